"""Training throughput: our loop against a plain PyTorch loop, side by side in one run.

Both train the same model with the same batch size and the same augmentation (pad-4-and-crop
plus horizontal flip, our "light" preset) on the same Fashion-MNIST images:

* plain: a Dataset that applies per-sample PIL transforms, a DataLoader (num_workers 0 and
  2, the better one counts), eager fp32 in the default memory format;
* ours: ``pocketvision.train.train`` (uint8 tensors in memory, batched tensor augmentation,
  channels_last where it pays).

Runs alternate (plain, ours, plain, ours, ...) so that load from other processes on a shared
machine hits both alike; we report the median of each. Target (issue 4): ours >= 2x plain.

    python benchmarks/train_throughput.py --models mobilenet_v1_025 lenet5
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset

import pocketvision
from pocketvision.data import load_data
from pocketvision.environment import environment
from pocketvision.preprocess import Preprocessing
from pocketvision.train import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results"


class PILDataset(Dataset[tuple[torch.Tensor, int]]):
    """The textbook pipeline: one PIL image per sample, transformed one at a time."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: float, std: float) -> None:
        self.images, self.labels, self.mean, self.std = images, labels, mean, std

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.images[i], mode="L")
        img = ImageOps.expand(img, border=4, fill=0)  # pad 4
        x0, y0 = random.randint(0, 8), random.randint(0, 8)
        img = img.crop((x0, y0, x0 + 28, y0 + 28))  # random crop back to 28
        if random.random() < 0.5:
            img = ImageOps.mirror(img)
        x = torch.from_numpy(np.asarray(img, np.float32) / 255.0)[None]
        return (x - self.mean) / self.std, int(self.labels[i])


def plain_loop(
    model_name: str, images: np.ndarray, labels: np.ndarray, batch: int, workers: int
) -> float:
    """Images per second of one epoch of the plain loop (model build excluded)."""
    torch.manual_seed(0)
    model = pocketvision.create_model(model_name, num_classes=10, in_chans=1, small_input=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loader = DataLoader(
        PILDataset(images, labels, 0.286, 0.353),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=False,
    )
    model.train()
    seen = 0
    t0 = time.perf_counter()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(y)
    return seen / (time.perf_counter() - t0)


def our_loop(model_name: str, n: int, batch: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        summary = train(
            TrainConfig(
                data="fashion-mnist",
                model=model_name,
                small_input=False,
                train_limit=n,
                epochs=1,
                batch_size=batch,
                augment="light",
                out=str(Path(tmp) / "run"),
                quiet=True,
                checkpoint_seconds=1e9,
            )
        )
    return float(summary["images_per_s"])  # training steps only, like plain_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mobilenet_v1_025", "lenet5"])
    parser.add_argument("--images", type=int, default=5120, help="images per timed epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prep = Preprocessing((1, 28, 28), (0.5,), (0.5,))
    train_set = load_data("fashion-mnist", prep).train
    images = train_set.images[: args.images, 0].numpy()
    labels = train_set.labels[: args.images].numpy()
    rows: list[dict[str, Any]] = []
    for name in args.models:
        plain: dict[int, list[float]] = {0: [], 2: []}
        ours: list[float] = []
        for _ in range(args.repeats):
            for workers in plain:
                plain[workers].append(plain_loop(name, images, labels, args.batch_size, workers))
            ours.append(our_loop(name, args.images, args.batch_size))
        best_plain = max(statistics.median(v) for v in plain.values())
        row = {
            "model": name,
            "plain_images_per_s": {
                f"workers_{k}": [round(x, 1) for x in v] for k, v in plain.items()
            },
            "ours_images_per_s": [round(x, 1) for x in ours],
            "speedup": round(statistics.median(ours) / best_plain, 2),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {
        "benchmark": "train_throughput",
        "batch_size": args.batch_size,
        "images_per_epoch": args.images,
        "augmentation": "pad 4 + random 28x28 crop + horizontal flip (ours: preset light)",
        "threads": args.threads,
        "repeats": args.repeats,
        "seeds": [0],
        "results": rows,
        "target_speedup": 2.0,
        "machine": environment(),
        "note": "2-core CPU shared with other jobs while measured; runs alternate to share the load",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "train_throughput.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
