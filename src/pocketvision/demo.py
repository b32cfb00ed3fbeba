"""``pocketvision demo``: the main job in one command.

Trains the default mobile model on Fashion-MNIST with the recipe measured to fit a few
minutes on a 2-core laptop CPU (README, "Training"), evaluates it on the test split, exports
it to every installed mobile format (each file checked against PyTorch), and profiles it across
runtimes. Without Fashion-MNIST (no file, no network) it says so and trains on digits.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pocketvision.errors import PocketvisionError
from pocketvision.train.config import TrainConfig

# The 5-minute recipe of benchmarks/train_fashion_mnist.py ("fast"): flips only, no label
# smoothing, twice the default peak lr (measurements: benchmarks/results/recipe_notes.md)
DEMO_CONFIG = TrainConfig(
    data="fashion-mnist",
    model="mobilenet_v1_050",
    small_input=True,
    epochs=10,
    batch_size=128,
    optimizer="sgd",
    lr=0.2,
    augment="flip",
    label_smoothing=0.0,
)


def run_demo(
    out: str | None = None,
    epochs: int | None = None,
    quiet: bool = False,
    ship: bool = True,
) -> dict[str, Any]:
    """Train, evaluate, and (with ``ship``) export and profile; returns the training summary."""
    from pocketvision.data.builtin import find_fashion_mnist
    from pocketvision.rundir import free_run_dir
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
        config = replace(config, out=str(free_run_dir(Path("runs") / f"demo-{config.data}")))
    summary = train(config)
    if not quiet:
        print(
            f"demo: {config.model} reached {100 * (summary['test_accuracy'] or 0):.2f}% test "
            f"accuracy on {config.data} in {summary['seconds']:.0f} s; run folder {summary['run_dir']}"
        )
    run_dir = summary["run_dir"]
    _evaluate(run_dir, quiet)
    if ship:
        _export(run_dir, quiet)
        _profile(run_dir, quiet)
    if not quiet:
        print(f"demo: next: pocketvision serve {run_dir}   (the browser demo)")
    return summary


def _evaluate(run_dir: str, quiet: bool) -> None:
    from pocketvision.evaluate import evaluate

    metrics = evaluate(run_dir, split="test")
    if not quiet:
        print(
            f"demo: evaluate: test accuracy {100 * metrics['accuracy']:.2f}%, macro F1 "
            f"{100 * metrics['macro_f1']:.2f}%, ECE {100 * metrics['ece']:.2f}%; "
            f"{run_dir}/confusion_matrix.png, {run_dir}/mistakes.png"
        )


def _export(run_dir: str, quiet: bool) -> None:
    from pocketvision.export import export_run, format_table

    results = export_run(run_dir, split="test", verify_images=500)
    if not quiet:
        print(format_table(results))
        ok = sum(r.status in ("ok", "unverified") for r in results)
        print(f"demo: export: {ok}/{len(results)} files written and checked -> {run_dir}/export")


def _profile(run_dir: str, quiet: bool) -> None:
    from pocketvision.profile.profiler import profile

    result = profile(
        run_dir, batches=(1,), runtime_names=("eager", "onnxruntime", "litert", "executorch")
    )
    if not quiet:
        for r in result.runtimes:
            shown = f"{r.median_ms:.3f} ms" if r.median_ms is not None else r.reason
            print(f"demo: profile: {r.runtime:12s} batch 1: {r.status} {shown}")
