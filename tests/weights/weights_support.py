"""Checkpoints in a source's own layout, built from the parity manifests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

MANIFESTS = Path(__file__).resolve().parents[2] / "src" / "pocketvision" / "weights" / "manifests"


def manifest(layout: str, source_name: str) -> dict:
    return json.loads((MANIFESTS / f"{layout}.{source_name}.json").read_text())


def source_state(layout: str, source_name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A checkpoint in the source's own key layout (names and shapes from its manifest)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in manifest(layout, source_name)["keys"]:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.1
    return state
