"""Does the search beat picking a model by hand? A timed Fashion-MNIST search under the issue's
budget (250 KB int8 file, 1 ms in LiteRT at batch 1) against the best registered model at its
standard width that fits the same budget, trained for the same time (issue 14).

The hand-picked baseline is chosen the way an app developer would choose without a search:
every registered name, at the width it is registered with, is built for Fashion-MNIST
(10 classes, 1 x 28 x 28) and measured with the search's own budget check; of those that fit,
the one with the highest published ImageNet top-1 wins (ties: more parameters). It trains
with the default recipe for as many epochs as fit in the same minutes (timed by a one-epoch
probe that is not counted).

Search and baseline run at the same time, each pinned to one of this machine's two cores with
one thread, so they get the same compute; the comparison is on the test split, which neither
has seen (the search ranks trials on validation accuracy).

    python benchmarks/search_fmnist.py                  # 60 minutes each, side by side
    python benchmarks/search_fmnist.py --minutes 5 --out /tmp/s.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SHAPE = (1, 28, 28)
CLASSES = 10


def _pin(core: int) -> None:
    """One core, one thread: set before torch starts its pools."""
    if hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {core})
    import torch

    torch.set_num_threads(1)


def _budget(args: argparse.Namespace) -> Any:
    from pocketvision.search.budget import Budget

    return Budget(None, args.max_size_kb, args.max_latency_ms, args.runtime, args.precision, 1)


def choose_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """Every registered name measured against the budget; the feasible one with the best top-1."""
    from pocketvision import create_model, list_models, model_info
    from pocketvision.search.budget import measure

    limit = _budget(args)
    rows = []
    for name in list_models():
        try:
            model = create_model(name, num_classes=CLASSES, in_chans=1, small_input=True)
            cost = measure(model.eval(), SHAPE, limit)
        except Exception as exc:  # a family that cannot take 28 px or convert: recorded
            rows.append({"model": name, "error": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        rows.append(
            {
                "model": name,
                "params": cost.params,
                "size_bytes": cost.size_bytes,
                "latency_ms": cost.latency_ms,
                "broke": cost.broke,
                "top1": model_info(name).top1,
            }
        )
    feasible = [r for r in rows if "error" not in r and not r["broke"]]
    if not feasible:
        raise SystemExit("no registered model fits the budget")
    best = max(feasible, key=lambda r: (r["top1"] or 0.0, r["params"]))
    return {"chosen": best, "measured": rows}


def _train(model: str, epochs: int, out: Path) -> dict[str, Any]:
    from pocketvision.train import TrainConfig, train

    config = TrainConfig(
        data="fashion-mnist", model=model, epochs=epochs, out=str(out), quiet=True, threads=1
    )
    return train(config)


def run_baseline(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    _pin(1)
    picked = choose_baseline(args)
    name = picked["chosen"]["model"]
    t0 = time.perf_counter()
    _train(name, 1, work / "probe")
    probe_s = time.perf_counter() - t0
    epochs = max(1, math.floor(args.minutes * 60 / probe_s))
    t0 = time.perf_counter()
    summary = _train(name, epochs, work / "baseline")
    return {
        **picked,
        "probe_epoch_s": round(probe_s, 1),
        "epochs": epochs,
        "train_s": round(time.perf_counter() - t0, 1),
        "val_accuracy": summary["best_val_accuracy"],
        "test_accuracy": summary["test_accuracy"],
    }


def run_search(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    _pin(0)
    from pocketvision.search import search

    t0 = time.perf_counter()
    result = search(
        "fashion-mnist",
        models=args.models,
        max_size_kb=args.max_size_kb,
        max_latency_ms=args.max_latency_ms,
        runtime=args.runtime,
        precision=args.precision,
        trials=args.trials,
        epochs=args.epochs,
        time_budget=args.minutes * 60,
        seed=args.seed,
        out=work / "search",
    )
    wall = time.perf_counter() - t0
    trials = json.loads((work / "search" / "trials.json").read_text())
    for t in trials:  # the test split, which the search never ranked on
        summary = Path(t["run_dir"] or "/nonexistent") / "summary.json"
        t["test_accuracy"] = (
            json.loads(summary.read_text()).get("test_accuracy") if summary.is_file() else None
        )
    states: dict[str, int] = {}
    for t in trials:
        states[t["state"]] = states.get(t["state"], 0) + 1
    best = result.best
    if best is not None:
        best["test_accuracy"] = next(
            t["test_accuracy"] for t in trials if t["run_dir"] == best["run_dir"]
        )
    return {
        "wall_s": round(wall, 1),
        "states": states,
        "best": best,
        "front": result.summary.get("front"),
        "trials": trials,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--models", default="mobilenet*,shufflenet*")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per search trial")
    parser.add_argument("--trials", type=int, default=500, help="cap; the time ends it first")
    parser.add_argument("--max-size-kb", type=float, default=250)
    parser.add_argument("--max-latency-ms", type=float, default=1.0)
    parser.add_argument("--runtime", default="litert")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("runs/bench-search-fmnist"))
    parser.add_argument("--role", choices=("search", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "search_fmnist.json")
    args = parser.parse_args()
    if args.role is not None:  # a child: one side of the comparison, its result as JSON
        side = run_search if args.role == "search" else run_baseline
        result = side(args, args.work)
        (args.work / f"{args.role}.json").write_text(json.dumps(result, indent=2))
        return
    _compare(args)


def _compare(args: argparse.Namespace) -> None:
    from pocketvision.environment import environment
    from pocketvision.files import write_json

    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    argv = [a for a in sys.argv[1:]]
    children = {
        role: subprocess.Popen(
            [sys.executable, __file__, *argv, "--role", role, "--work", str(args.work)], env=env
        )
        for role in ("search", "baseline")
    }
    t0 = time.perf_counter()
    codes = {role: p.wait() for role, p in children.items()}
    if any(codes.values()):
        raise SystemExit(f"a side failed: {codes}")
    found = json.loads((args.work / "search.json").read_text())
    base = json.loads((args.work / "baseline.json").read_text())
    best = found["best"] or {}
    gap = None
    if best.get("test_accuracy") is not None:
        gap = round(100 * (best["test_accuracy"] - base["test_accuracy"]), 2)
    out = {
        "benchmark": "search_fmnist",
        "minutes_each": args.minutes,
        "budget": {
            "max_size_kb": args.max_size_kb,
            "max_latency_ms": args.max_latency_ms,
            "runtime": args.runtime,
            "precision": args.precision,
        },
        "search_settings": {"models": args.models, "epochs": args.epochs, "seed": args.seed},
        "compute": "search and baseline side by side, one core and one thread each",
        "wall_s": round(time.perf_counter() - t0, 1),
        "search": found,
        "baseline": base,
        "search_minus_baseline_test_pt": gap,
        "search_beats_baseline": None if gap is None else gap > 0,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "environment": environment(),
    }
    write_json(args.out, out)
    print(json.dumps({k: out[k] for k in ("search_minus_baseline_test_pt", "wall_s")}, indent=2))


if __name__ == "__main__":
    main()
