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

# The 5-minute recipe of benchmarks/train_fashion_mnist.py ("fast"); one intra-op thread
# because on a CPU shared with other work two OpenMP threads mostly wait for each other.
DEMO_CONFIG = TrainConfig(
    data="fashion-mnist",
    model="mobilenet_v1_025",
    small_input=True,
    epochs=6,
    batch_size=128,
    optimizer="sgd",
    augment="light",
    label_smoothing=0.1,
    threads=1,
)


def run_demo(
    out: str | None = None, epochs: int | None = None, quiet: bool = False
) -> dict[str, Any]:
    """Train and report; returns the training summary."""
    from pocketvision.data.builtin import find_fashion_mnist
    from pocketvision.train.loop import train

    config = replace(DEMO_CONFIG, out=out, quiet=quiet)
    try:
        find_fashion_mnist()
    except PocketvisionError as err:
        print(f"demo: Fashion-MNIST unavailable ({err})")
        print("demo: training on scikit-learn's digits instead (always offline)")
        # 1,438 small images: more epochs at a smaller batch cost less than one F-MNIST epoch
        config = replace(config, data="digits", epochs=15, batch_size=32)
    if epochs:
        config = replace(config, epochs=epochs)
    if config.out is None:
        config = replace(config, out=_free_folder(Path("runs") / f"demo-{config.data}"))
    summary = train(config)
    if not quiet:
        print(
            f"demo: {config.model} reached {100 * (summary['test_accuracy'] or 0):.2f}% test "
            f"accuracy on {config.data} in {summary['seconds']:.0f} s; run folder {summary['run_dir']}"
        )
        print(f"demo: next: pocketvision evaluate {summary['run_dir']} --split test")
    return summary


def _free_folder(base: Path) -> str:
    """``base``, or ``base-2``, ``base-3``... when a run is already there."""
    out, i = base, 2
    while (out / "model.json").exists():
        out, i = Path(f"{base}-{i}"), i + 1
    return str(out)
