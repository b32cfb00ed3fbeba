"""Shared test settings: one intra-op thread per xdist worker (2 workers on 2 cores)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def trained_demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's architecture and recipe (MobileNet v1 0.5, small_input) trained on 4,000
    Fashion-MNIST images for 3 epochs, ~80 % accurate: enough for int8 rounding and
    quantisation-aware training to have measurable effects. Shared by the quantised-export
    and QAT tests (one xdist group, ``trained_demo_run``, so it trains once per suite);
    1,200 validation images, since every fake-quantised pass over val is slow."""
    from dataclasses import replace

    from pocketvision.demo import DEMO_CONFIG
    from pocketvision.train import train

    out = tmp_path_factory.mktemp("trained_demo") / "fp32"
    train(
        replace(
            DEMO_CONFIG,
            train_limit=4000,
            val_fraction=0.02,
            epochs=3,
            out=str(out),
            quiet=True,
            threads=1,
            checkpoint_seconds=1e9,
        )
    )
    return out
