"""pocketvision demo: without Fashion-MNIST it says so, trains on digits, and still runs the
whole job: evaluate, export to every installed format (each file checked), profile."""

from __future__ import annotations

import json
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
    metrics = json.loads((out / "metrics.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert metrics["accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-5)
    report = json.loads((out / "export" / "export_report.json").read_text())
    formats = {r["format"] for r in report}
    assert {"onnx", "tflite", "executorch", "coreml"} <= formats
    for row in report:
        assert row["status"] in ("ok", "unverified"), row
        if row["precision"] == "fp32" and row["status"] == "ok":
            assert row["max_abs_diff"] <= 1e-4 and row["top1_agreement"] == 1.0
    profiled = [line for line in printed.splitlines() if line.startswith("demo: profile:")]
    assert len(profiled) == 4 and all(": ok " in line for line in profiled), profiled
