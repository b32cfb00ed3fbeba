"""``pocketvision demo``: the main job in one command.

Trains the default mobile model on Fashion-MNIST with the recipe measured to fit a few
minutes on a 2-core laptop CPU (docs/readme/train.md), scores it on the test split and prints
a summary. Without Fashion-MNIST (no file, no network) it says so and trains on digits.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pocketvision.errors import PocketvisionError
from pocketvision.train.config import TrainConfig

# The 5-minute recipe of benchmarks/train_fashion_mnist.py ("fast").
DEMO_CONFIG = TrainConfig(
    data="fashion-mnist",
    model="mobilenet_v1_025",
    small_input=False,
    epochs=3,
    batch_size=128,
    optimizer="sgd",
    augment="light",
    label_smoothing=0.1,
)


def run_demo(
    out: str | None = None, epochs: int | None = None, quiet: bool = False
) -> dict[str, Any]:
    """Train and report; returns the training summary."""
    from pocketvision.data.builtin import find_fashion_mnist
    from pocketvision.train.loop import train

    config = replace(DEMO_CONFIG, out=out or "runs/demo", quiet=quiet)
    if epochs:
        config = replace(config, epochs=epochs)
    try:
        find_fashion_mnist()
    except PocketvisionError as err:
        print(f"demo: Fashion-MNIST unavailable ({err}); training on scikit-learn's digits instead")
        config = replace(config, data="digits", epochs=max(config.epochs, 15), batch_size=64)
    if (Path(config.out or "") / "model.json").exists():
        config = replace(config, out=None)  # runs/demo taken: let train number a new folder
    return train(config)
