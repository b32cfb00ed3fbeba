"""Helpers for the evaluate/predict tests: digits as uint8 images and a trained run.

LeNet-5 is trained on scikit-learn's digits with a plain PyTorch loop (independent of
pocketvision.train), then written with the rundir helpers, as training would write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits

from pocketvision import create_model
from pocketvision.files import write_json
from pocketvision.preprocess import Preprocessing
from pocketvision.rundir import BEST, ModelSpec, save_weights, write_run_files

PREP = Preprocessing(input_size=(1, 32, 32), mean=(0.5,), std=(0.5,))
CLASSES = [str(d) for d in range(10)]


def digits_uint8(size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Digits as uint8 (N, 1, size, size) upsampled from 8x8, the raw 8x8 uint8, and labels."""
    digits = load_digits()
    raw = np.round(digits.images / 16.0 * 255.0).astype(np.uint8)  # (N, 8, 8)
    # the same PIL bilinear resize pocketvision.preprocess.decode_uint8 applies to a file
    big = np.stack(
        [
            np.asarray(Image.fromarray(r, "L").resize((size, size), Image.Resampling.BILINEAR))
            for r in raw
        ]
    )
    return big[:, None], raw, digits.target.astype(np.int64)


@dataclass(frozen=True)
class DigitsRun:
    path: Path
    images: np.ndarray  # uint8 (N, 1, 32, 32), held-out images
    raw: np.ndarray  # uint8 (N, 8, 8), the same held-out images before upsampling
    labels: np.ndarray  # int64 (N,)


def _train(images: np.ndarray, labels: np.ndarray) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_chans=1)
    x = (torch.from_numpy(images).float() / 255.0 - 0.5) / 0.5
    y = torch.from_numpy(labels)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(4):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def make_digits_run(root: Path) -> DigitsRun:
    """Train lenet5 on 80% of digits and write a run under ``root``; return the other 20%."""
    images, raw, labels = digits_uint8()
    order = np.random.default_rng(0).permutation(len(labels))
    cut = int(0.8 * len(labels))
    train_idx, test_idx = order[:cut], order[cut:]
    model = _train(images[train_idx], labels[train_idx])
    run = root / "digits_lenet5"
    write_run_files(run, ModelSpec("lenet5", {"num_classes": 10, "in_chans": 1}), CLASSES, PREP)
    write_json(run / "config.json", {"data": "digits", "model": "lenet5", "seed": 0})
    save_weights(model, run / BEST)
    return DigitsRun(run, images[test_idx], raw[test_idx], labels[test_idx])


def write_digit_file(path: Path, raw8: np.ndarray, mode: str = "L") -> Path:
    """Write one 8x8 uint8 digit as an image file; format from the suffix (PNG, JPEG, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(raw8, "L").convert(mode)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img.save(path, quality=100, subsampling=0)
    else:
        img.save(path)
    return path
