"""Fashion-MNIST test accuracy against wall time, for a registered mobile-family model.

Targets (issue 4): >= 93.0% test accuracy within 5 minutes on a 2-core CPU ("fast" recipe)
and >= 95.0% within 60 minutes ("long" recipe). Writes
benchmarks/results/train_fashion_mnist_<recipe>_<device>.json with the machine, versions,
seeds, every run's time-to-accuracy curve (validation accuracy after each epoch against
elapsed seconds) and the spread of test accuracy over seeds.

    python benchmarks/train_fashion_mnist.py --recipe fast
    python benchmarks/train_fashion_mnist.py --recipe long --device cuda --seeds 0 1 2
    python benchmarks/train_fashion_mnist.py --model mobilenet_v3_small_075 --epochs 0 \
        --out benchmarks/results/train_fashion_mnist_fast_cpu_mobilenet_v3_small_075.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from pocketvision.demo import DEMO_CONFIG
from pocketvision.environment import environment
from pocketvision.train import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results"

RECIPES: dict[str, tuple[TrainConfig, float, float]] = {
    # (config, target test accuracy, wall-time budget in seconds)
    "fast": (
        # the demo's recipe (pocketvision.demo.DEMO_CONFIG, where its choice is explained) on
        # both cores: on a quiet 2-core machine 2 threads give ~2,200 images/s for this model;
        # on a CPU shared with other jobs pass --threads 1 (2 threads then mostly wait)
        replace(DEMO_CONFIG, checkpoint_seconds=1e9, threads=2),
        0.93,
        300.0,
    ),
    "long": (
        # chosen on a lent H100 by benchmarks/long_recipe_search.sh (11 recipes, each with the
        # epochs its model fits into an hour of this 2-core CPU): the smallest MobileNet v1
        # trains the most epochs, and beat v1_075 (55 epochs), v1_100 (40) and v2_050 (80) by
        # 0.7-0.8 pt; translation and random erasing tied. Weight decay 5e-4: 5e-5 beat it by
        # 0.7 pt at 45 epochs (GPU), but over 115 epochs on the CPU it overfit (train 98.4 %,
        # test 93.93 %, train_fashion_mnist_long_cpu_wd5e-5.json). 115 epochs: ~29.5 s each on
        # this idle 2-core CPU, 57 minutes with loading and the test pass
        TrainConfig(
            data="fashion-mnist",
            model="mobilenet_v1_050",
            small_input=True,
            epochs=115,
            batch_size=256,
            optimizer="sgd",
            lr=0.2,
            weight_decay=5e-4,
            augment="light",
            ema=True,
            label_smoothing=0.1,
            checkpoint_seconds=300,
            threads=2,
        ),
        0.95,
        3600.0,
    ),
}


def fit_epochs(base: TrainConfig, budget: float) -> int:
    """Epochs of ``base`` that fit in the budget: a 1-epoch probe on 4,000 images gives the
    training images/s; 85 % of the budget goes to training epochs (the rest: loading, the
    validation pass after each epoch and the final test pass)."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = replace(base, epochs=1, train_limit=4000, out=str(Path(tmp) / "probe"), quiet=True)
        ips = float(train(probe)["images_per_s"])
    return max(1, int(0.85 * budget * ips / 54_000))


def run(
    recipe: str,
    seeds: list[int],
    device: str,
    epochs: int | None,
    threads: int | None,
    model: str | None = None,
) -> dict[str, Any]:
    base, target, budget = RECIPES[recipe]
    base = replace(base, device=device, threads=threads or base.threads)
    if model:
        base = replace(base, model=model)
    if epochs == 0:
        base = replace(base, epochs=fit_epochs(base, budget))
    elif epochs:
        base = replace(base, epochs=epochs)
    runs = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            summary = train(replace(base, seed=seed, out=str(Path(tmp) / "run"), quiet=False))
            wall = time.perf_counter() - t0
            history = [
                json.loads(x)
                for x in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()
            ]
        runs.append(
            {
                "seed": seed,
                "test_accuracy": summary["test_accuracy"],
                "best_val_accuracy": summary["best_val_accuracy"],
                "wall_seconds": round(wall, 1),
                "train_seconds": summary["seconds"],
                "images_per_s": summary["images_per_s"],
                "curve": [
                    {
                        "epoch": r["epoch"],
                        "elapsed": r["elapsed"],
                        "val_accuracy": r["val_accuracy"],
                    }
                    for r in history
                ],
            }
        )
    accs = [r["test_accuracy"] for r in runs]
    walls = [r["wall_seconds"] for r in runs]
    return {
        "benchmark": "train_fashion_mnist",
        "recipe": recipe,
        "config": base.to_dict(),
        "target_test_accuracy": target,
        "budget_seconds": budget,
        "reached": all(a >= target for a in accs) and all(w <= budget for w in walls),
        "test_accuracy": {
            "mean": statistics.mean(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "min": min(accs),
            "max": max(accs),
        },
        "wall_seconds": {"mean": statistics.mean(walls), "max": max(walls)},
        "seeds": seeds,
        "runs": runs,
        "machine": environment(),
        "note": "CPU shared with other jobs while measured unless stated; wall time includes "
        "data loading and the final test evaluation",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="fast")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="override the recipe's epochs; 0: as many as fit the recipe's time budget",
    )
    parser.add_argument("--model", default=None, help="override the recipe's model")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = run(args.recipe, args.seeds, args.device, args.epochs, args.threads, args.model)
    dev = "cuda" if "gpu" in result["machine"] and args.device != "cpu" else "cpu"
    out = args.out or RESULTS / f"train_fashion_mnist_{args.recipe}_{dev}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps({k: result[k] for k in ("recipe", "test_accuracy", "wall_seconds", "reached")})
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
