"""Run directories for the export tests, made the way training makes them.

Untrained networks give degenerate logits (zero-initialised residual branches make every
class score nearly equal), which would make "top-1 agreement" meaningless. ``make_run``
therefore gives every BatchNorm random affine parameters and real running statistics from
Fashion-MNIST images, so logits spread like a trained model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketvision.files import write_json
from pocketvision.preprocess import Preprocessing
from pocketvision.rundir import BEST, ModelSpec, save_weights, write_run_files

FASHION_LABELS = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)


def fashion_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """n Fashion-MNIST training images, uint8 (n, 1, size, size), via pocketvision.data."""
    from pocketvision.data import load_data

    prep = Preprocessing((1, size, size), FASHION_MEAN, FASHION_STD)
    train = load_data("fashion-mnist", prep).train
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    return train.images[pick].numpy()


def realistic_norms(model: nn.Module, images: np.ndarray, prep: Preprocessing) -> None:
    """Random BatchNorm affine parameters and running statistics measured on ``images``."""
    from pocketvision.preprocess import normalize

    generator = torch.Generator().manual_seed(0)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d)]
    for norm in norms:
        with torch.no_grad():
            norm.weight.copy_(0.5 + torch.rand(norm.weight.shape, generator=generator))
            norm.bias.copy_(0.2 * torch.randn(norm.bias.shape, generator=generator))
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
    if norms:
        model.train()
        with torch.no_grad():
            for batch in np.array_split(normalize(images, prep), 2):
                model(torch.from_numpy(batch))
    model.eval()


def make_run(
    root: Path,
    name: str,
    *,
    size: int = 32,
    data: str | None = "fashion-mnist",
    kwargs: dict[str, Any] | None = None,
    model: nn.Module | None = None,
    rgb: bool = False,
) -> Path:
    """A run directory as train() writes it: weights, labels, preprocessing, config.

    ``rgb`` makes a 3-channel run with ImageNet's per-channel mean and std (no data source).
    """
    channels = 3 if rgb else 1
    spec = ModelSpec(
        name, {"num_classes": 10, "in_chans": channels, "small_input": True, **(kwargs or {})}
    )
    if rgb:
        prep = Preprocessing((3, size, size), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    else:
        prep = Preprocessing((1, size, size), FASHION_MEAN, FASHION_STD)
    if model is None:
        model = spec.build()
        if not rgb:
            realistic_norms(model, fashion_images(200, size), prep)
    run = root / name
    save_weights(model, run / BEST)
    write_run_files(run, spec, FASHION_LABELS, prep)
    write_json(run / "config.json", {"data": data} if data else {})
    return run
