"""Inference latency of the mobile zoo across runtimes, side by side in one run.

Every measurement goes through ``pocketvision.profile.profile`` (the same code as
``pocketvision profile``): the deploy runtimes time the files ``pocketvision export`` writes,
each runtime's output is checked against eager PyTorch before it is timed, and the machine's
fp32 matmul peak is measured in the same process at the same thread count.

Parts, in this order (each model's result is written as soon as it is measured):

* target: mobilenet_v2_100 at 3x224x224, batch 1 and 32: is the fastest deploy runtime
  (onnxruntime / litert / executorch) >= 3x faster than eager at batch 1, and at >= 60 % of
  the matmul peak at batch 32? Measured first and again last (``target_rerun``), so load from
  other processes on a shared machine shows up as the spread between the two.
* zoo: every mobile model at the input its paper's top-1 and MACs are for (224 px except
  EfficientNet-Lite1-4: 240-300 px), batch 1; ``benchmarks/zoo_pareto.py`` turns it into the
  top-1 / params / MACs / latency table with the Pareto front.
* zoo224 (not by default): every mobile model at 3x224x224, batch 1.
* fmnist: the Fashion-MNIST size (1x28x28, ``small_input=True``, 10 classes), batch 1 and 32,
  one model per family (``--all-fmnist``: every mobile model).

    python benchmarks/latency.py                      # ~15 min on 2 quiet cores
    python benchmarks/latency.py --parts target       # the target comparison only
    python benchmarks/latency.py --models mobilenet_v2_100,shufflenet_v1_g3_100 --parts zoo

Writes benchmarks/results/latency_<threads>t.json (see ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from pocketvision.environment import environment
from pocketvision.profile.profiler import ProfileResult, profile
from pocketvision.profile.runtimes import DEPLOY_RUNTIMES

RESULTS = Path(__file__).resolve().parent / "results"
MOBILE_ZOO = (
    "mobilenet_v1_025",
    "mobilenet_v1_050",
    "mobilenet_v1_075",
    "mobilenet_v1_100",
    "mobilenet_v2_035",
    "mobilenet_v2_050",
    "mobilenet_v2_075",
    "mobilenet_v2_100",
    "mobilenet_v2_140",
    "shufflenet_v1_g1_100",
    "shufflenet_v1_g2_100",
    "shufflenet_v1_g3_050",
    "shufflenet_v1_g3_100",
    "shufflenet_v1_g3_150",
    "shufflenet_v1_g3_200",
    "shufflenet_v1_g4_100",
    "shufflenet_v1_g8_100",
    "squeezenet1_0",
    "squeezenet1_1",
    "nasnet_a_mobile",
    "se_mobilenet_v1_100",
    "se_shufflenet_v1_g3_100",
    # after 2018 (issue 13)
    "mobilenet_v3_small_075",
    "mobilenet_v3_small_100",
    "mobilenet_v3_large_075",
    "mobilenet_v3_large_100",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "efficientnet_lite3",
    "efficientnet_lite4",
    "mobilenet_v4_conv_small",
    "mobilenet_v4_conv_medium",
    "mobileone_s0",
    "mobileone_s1",
    "mobileone_s2",
    "mobileone_s3",
    "mobileone_s4",
)
# One model per family for the Fashion-MNIST size unless --all-fmnist.
FMNIST_DEFAULT = (
    "mobilenet_v1_100",
    "mobilenet_v2_100",
    "shufflenet_v1_g3_100",
    "squeezenet1_1",
    "nasnet_a_mobile",
    "se_mobilenet_v1_100",
    "se_shufflenet_v1_g3_100",
)
TARGET = "mobilenet_v2_100"
RUNTIMES = ("eager", *DEPLOY_RUNTIMES)
PARTS = ("target", "zoo", "zoo224", "fmnist")
DEFAULT_PARTS = ("target", "zoo", "fmnist")


def load() -> list[float]:
    """1, 5 and 15 minute load averages: other processes' share of a shared machine."""
    return [round(v, 2) for v in os.getloadavg()]


def summarize(result: ProfileResult) -> dict[str, Any]:
    """Per batch: eager, the fastest deploy runtime, their ratio, its share of the peak."""
    out: dict[str, Any] = {}
    for batch in sorted({r.batch for r in result.runtimes}):
        ok = {
            r.runtime: r
            for r in result.runtimes
            if r.batch == batch and r.status == "ok" and r.median_ms
        }
        deploy = [ok[n] for n in DEPLOY_RUNTIMES if n in ok]
        best = min(deploy, key=lambda r: r.median_ms or 0.0) if deploy else None
        eager = ok.get("eager")
        out[str(batch)] = {
            "eager_ms": eager.median_ms if eager else None,
            "fastest_deploy": best.runtime if best else None,
            "fastest_deploy_ms": best.median_ms if best else None,
            "speedup_vs_eager": (
                round((eager.median_ms or 0.0) / (best.median_ms or 1.0), 2)
                if best and eager
                else None
            ),
            "fastest_deploy_peak_fraction": best.peak_fraction if best else None,
            "fastest_overall": min(ok.values(), key=lambda r: r.median_ms or 0.0).runtime
            if ok
            else None,
        }
    return out


def measure(
    name: str, part: str, *, size: int, batches: tuple[int, ...], args: argparse.Namespace
) -> dict[str, Any]:
    fmnist = part == "fmnist"
    before = load()
    start = time.perf_counter()
    # One profile per batch size: >= 30 timed runs at batch 1 (the profile contract), fewer
    # at batch 32, where one call at 224 px takes about a second on one core.
    results = [
        profile(
            name,
            input_size=size,
            in_chans=1 if fmnist else 3,
            num_classes=10 if fmnist else 1000,
            batches=(batch,),
            threads=args.threads,
            runtime_names=args.runtimes,
            runs=args.runs if batch == 1 else min(args.runs, args.runs_large),
            model_kwargs={"small_input": True} if fmnist else None,
            log=lambda m: print(f"[{part}] {m}", flush=True),
        )
        for batch in batches
    ]
    result = results[0]
    for other in results[1:]:
        result.runtimes += other.runtimes  # peak_fraction: each against its own run's peak
    result.peak_gflops = max(r.peak_gflops for r in results)
    row = asdict(result)
    row.pop("machine")
    row.update(
        part=part,
        summary=summarize(result),
        load_before=before,
        load_after=load(),
        wall_s=round(time.perf_counter() - start, 1),
    )
    for batch, s in row["summary"].items():
        print(
            f"[{part}] {name} b{batch}: eager {s['eager_ms']} ms, fastest deploy "
            f"{s['fastest_deploy']} {s['fastest_deploy_ms']} ms "
            f"(x{s['speedup_vs_eager']}, {s['fastest_deploy_peak_fraction']} of peak)",
            flush=True,
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts", default=",".join(DEFAULT_PARTS), help=f"subset of {','.join(PARTS)}"
    )
    parser.add_argument("--models", help="comma-separated (default: the mobile zoo)")
    parser.add_argument("--all-fmnist", action="store_true", help="every model at 28 px")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--runs", type=int, default=30, help="timed runs at batch 1")
    parser.add_argument("--runs-large", type=int, default=10, help="timed runs at batch 32")
    parser.add_argument("--out", type=Path, help="default: results/latency_<threads>t.json")
    args = parser.parse_args()
    args.runtimes = [r for r in args.runtimes.split(",") if r]
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    models = args.models.split(",") if args.models else list(MOBILE_ZOO)
    out = args.out or RESULTS / f"latency_{args.threads}t.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    record: dict[str, Any] = {
        "benchmark": "latency",
        "command": "python benchmarks/latency.py " + " ".join(sys.argv[1:]),
        "machine": environment(),
        "threads": args.threads,
        "load_at_start": load(),
        "runtimes": args.runtimes,
        "versions": versions(),
        "rows": [],
    }
    start = time.perf_counter()

    def save() -> None:
        record["wall_s"] = round(time.perf_counter() - start, 1)
        record["load_at_end"] = load()
        out.write_text(json.dumps(record, indent=2) + "\n")

    plan: list[tuple[str, str, int, tuple[int, ...]]] = []
    if "target" in parts:
        plan.append((TARGET, "target", 224, (1, 32)))
    if "zoo" in parts:
        from pocketvision import model_info

        plan += [(m, "zoo", model_info(m).input_size[-1], (1,)) for m in models]
    if "zoo224" in parts:
        plan += [(m, "zoo224", 224, (1,)) for m in models]
    if "fmnist" in parts:
        chosen = models if args.all_fmnist or args.models else list(FMNIST_DEFAULT)
        plan += [(m, "fmnist", 28, (1, 32)) for m in chosen]
    if "target" in parts:
        plan.append((TARGET, "target_rerun", 224, (1, 32)))
    for name, part, size, batches in plan:
        try:
            record["rows"].append(measure(name, part, size=size, batches=batches, args=args))
        except Exception as err:  # one model failing to build must not lose the others
            record["rows"].append({"model": name, "part": part, "error": repr(err)[:300]})
        save()
    print(f"wrote {out} in {record['wall_s']} s")


def versions() -> dict[str, str]:
    """Installed versions of every runtime's package."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("torch", "onnx", "onnxruntime", "litert-torch", "ai-edge-litert", "executorch"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


if __name__ == "__main__":
    main()
