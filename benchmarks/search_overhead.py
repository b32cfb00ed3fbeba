"""What the search costs beyond training: target an infeasible trial under 10 s and the
search's own bookkeeping (Optuna's sampling and storage, trials.json / summary.json after every
trial, pareto.png, study set-up) under 5 % of the wall time (issue 14).

Runs :func:`pocketvision.search.search` on a budget tight enough that some trials break it
(by default the issue's: 250 KB int8 file, 1 ms in LiteRT at batch 1), with short trainings,
then reads trials.json: each trial's ``seconds`` covers its budget check and its training, so
the wall time minus their sum is what the search itself spent.

    python benchmarks/search_overhead.py                      # Fashion-MNIST (digits if absent)
    python benchmarks/search_overhead.py --trials 6 --train-limit 500
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pocketvision.environment import environment
from pocketvision.files import write_json

RESULTS = Path(__file__).resolve().parent / "results"


def _data() -> str:
    from pocketvision.data import builtin

    return "fashion-mnist" if builtin.DEBIAN_DIR.is_dir() else "digits"


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="default: fashion-mnist, else digits")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=2000)
    parser.add_argument("--max-size-kb", type=float, default=250)
    parser.add_argument("--max-latency-ms", type=float, default=1.0)
    parser.add_argument("--runtime", default="litert")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "search_overhead.json")
    args = parser.parse_args()
    from pocketvision.search import search

    data = args.data or _data()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "search"
        t0 = time.perf_counter()
        result = search(
            data,
            max_size_kb=args.max_size_kb,
            max_latency_ms=args.max_latency_ms,
            runtime=args.runtime,
            precision=args.precision,
            trials=args.trials,
            epochs=args.epochs,
            train_limit=args.train_limit,
            seed=args.seed,
            out=folder,
        )
        wall = time.perf_counter() - t0
        entries: list[dict[str, Any]] = json.loads((folder / "trials.json").read_text())
    by_state: dict[str, list[float]] = {}
    for e in entries:
        by_state.setdefault(e["state"], []).append(float(e["seconds"] or 0.0))
    in_trials = sum(sum(v) for v in by_state.values())
    bookkeeping = wall - in_trials
    infeasible = by_state.get("infeasible", [])
    out = {
        "benchmark": "search_overhead",
        "data": data,
        "budget": {
            "max_size_kb": args.max_size_kb,
            "max_latency_ms": args.max_latency_ms,
            "runtime": args.runtime,
            "precision": args.precision,
        },
        "trials": len(entries),
        "epochs": args.epochs,
        "train_limit": args.train_limit,
        "states": {k: len(v) for k, v in by_state.items()},
        "wall_s": round(wall, 2),
        "seconds_in_trials": round(in_trials, 2),
        "bookkeeping_s": round(bookkeeping, 2),
        "bookkeeping_fraction": round(bookkeeping / wall, 4),
        "infeasible_trial_s": _spread(infeasible),
        "trial_s_by_state": {k: _spread(v) for k, v in by_state.items()},
        "targets": {"infeasible_trial_s": 10, "bookkeeping_fraction": 0.05},
        "meets_targets": bool(
            (not infeasible or max(infeasible) < 10) and bookkeeping / wall < 0.05
        ),
        "best": result.best,
        # other work on the machine during the run (1, 5, 15 minute load averages at the end)
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "environment": environment(),
    }
    write_json(args.out, out)
    print(json.dumps({k: v for k, v in out.items() if k not in ("environment", "best")}, indent=2))


if __name__ == "__main__":
    main()
