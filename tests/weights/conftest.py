from __future__ import annotations

from pathlib import Path

import pytest
import torch
from weights_support import source_state


@pytest.fixture
def squeezenet_file(tmp_path: Path) -> Path:
    path = tmp_path / "squeezenet1_1-b8a52dc0.pth"
    torch.save(source_state("torchvision.squeezenet", "squeezenet1_1"), path)
    return path


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POCKETVISION_HOME", str(tmp_path / "home"))
