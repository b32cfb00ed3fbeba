"""pocketvision demo: without Fashion-MNIST it says so and trains on digits."""

from __future__ import annotations

from pathlib import Path

import pytest

from pocketvision.cli import main
from pocketvision.data import builtin


def test_demo_falls_back_to_digits_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("POCKETVISION_DATA", raising=False)
    monkeypatch.setattr(builtin, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(builtin, "FASHION_MNIST_URL", "http://127.0.0.1:9/")  # no network
    out = tmp_path / "demo"
    assert main(["demo", "--epochs", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Fashion-MNIST unavailable" in printed and "digits instead" in printed
    assert "test accuracy on digits" in printed
    assert (out / "summary.json").exists() and (out / "checkpoints" / "best.safetensors").exists()
