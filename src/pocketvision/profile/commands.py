"""``pocketvision profile`` and ``pocketvision compare``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from pocketvision.errors import PocketvisionError

if TYPE_CHECKING:
    from pocketvision.profile.profiler import ProfileResult


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _profile(args: argparse.Namespace) -> int:
    from pocketvision.profile.profiler import profile

    result = profile(
        args.target,
        input_size=args.input_size,
        in_chans=args.in_chans,
        num_classes=args.num_classes,
        batches=args.batch,
        threads=args.threads,
        runtime_names=args.runtimes,
        runs=args.runs,
        log=None if args.json else _log,
    )
    if args.json:
        print(result.to_json())
        return 0
    _print_profile(result)
    return 0


def _print_profile(result: ProfileResult) -> None:
    """The profile as a line of static costs, a table per runtime and batch, then failures."""
    from rich.console import Console
    from rich.table import Column, Table

    # piped output gets 120 columns, not rich's 80, so the table keeps its headers
    console = Console() if sys.stdout.isatty() else Console(width=120)
    c, h, w = result.input_size
    console.print(
        f"[bold]{result.model}[/] {c}x{h}x{w}: {result.params:,} params, "
        f"{result.macs / 1e6:,.1f}M MACs, activations {result.activation_bytes / 2**20:.2f} MiB, "
        f"fp32/fp16/int8 {result.size_bytes['fp32'] / 2**20:.2f}/"
        f"{result.size_bytes['fp16'] / 2**20:.2f}/{result.size_bytes['int8'] / 2**20:.2f} MiB; "
        f"matmul peak {result.peak_gflops:.1f} GFLOP/s on {result.threads} threads"
    )
    table = Table(
        Column("runtime", no_wrap=True),
        "batch",
        "median ms",
        "p90 ms",
        "img/s",
        "GFLOP/s",
        "% peak",
        "status",
    )
    for r in result.runtimes:
        ok = r.status == "ok"
        table.add_row(
            r.runtime,
            str(r.batch),
            f"{r.median_ms:.3f}" if ok and r.median_ms is not None else "",
            f"{r.p90_ms:.3f}" if ok and r.p90_ms is not None else "",
            f"{r.images_per_s:,.1f}" if ok and r.images_per_s is not None else "",
            f"{r.gflops:.2f}" if ok and r.gflops is not None else "",
            f"{100 * r.peak_fraction:.1f}" if ok and r.peak_fraction is not None else "",
            r.status,
        )
    console.print(table)
    # reasons below the table, one line each: in a column they wrap into unreadable slivers
    for r in result.runtimes:
        if r.status != "ok":
            console.print(f"{r.runtime} (batch {r.batch}) {r.status}: {r.reason}", markup=False)


def _compare(args: argparse.Namespace) -> int:
    from pocketvision.profile.compare import compare

    targets = args.models or args.runs
    if args.models and args.runs:
        raise PocketvisionError("give --models or --runs, not both")
    rows = compare(
        targets,
        input_size=args.input_size,
        runtime_names=args.runtimes,
        out=args.out,
        threads=args.threads,
        runs=args.runs_per_model,
        log=_log,
        budget_s=args.seconds or None,
    )
    print((args.out / "compare.md").read_text())
    print(f"{len(rows)} models -> {args.out}/compare.md, compare.html, compare.json, *.png")
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``profile`` and ``compare``."""
    from pathlib import Path

    from pocketvision.profile.compare import COMPARE_RUNTIMES
    from pocketvision.profile.profiler import DEFAULT_RUNTIMES

    p = subparsers.add_parser(
        "profile", help="params, MACs, memory, size and latency across runtimes"
    )
    p.add_argument("target", metavar="NAME_OR_RUN", help="registered model name or run directory")
    p.add_argument("--input-size", type=int, help="square input size (default: the model's)")
    p.add_argument("--in-chans", type=int, help="input channels (default: the model's)")
    p.add_argument("--num-classes", type=int, help="classifier outputs (default: 1000)")
    p.add_argument("--batch", type=_int_list, default=[1, 32], help="batch sizes, e.g. 1,32")
    p.add_argument("--threads", type=int, help="intra-op threads (default: torch's)")
    p.add_argument(
        "--runtimes",
        type=_names,
        default=list(DEFAULT_RUNTIMES),
        help=f"comma-separated, from {','.join(DEFAULT_RUNTIMES)}",
    )
    p.add_argument("--runs", type=int, default=30, help="timed runs per measurement (>= 30)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_profile)

    c = subparsers.add_parser("compare", help="the zoo or your runs side by side, Pareto plots")
    c.add_argument("--models", type=_names, help="comma-separated names (default: whole registry)")
    c.add_argument("--runs", nargs="+", help="run directories, e.g. runs/*")
    c.add_argument("--input-size", type=int, default=224, help="input size for registered models")
    c.add_argument(
        "--runtimes",
        type=_names,
        default=list(COMPARE_RUNTIMES),
        help=f"comma-separated (default: {','.join(COMPARE_RUNTIMES)})",
    )
    c.add_argument("--threads", type=int, help="intra-op threads (default: torch's)")
    c.add_argument("--runs-per-model", type=int, default=30, help="timed runs per model")
    c.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help="stop timing a runtime after this many seconds (>= 5 runs); 0: always all runs",
    )
    c.add_argument("--out", type=Path, default=Path("compare"), help="output directory")
    c.set_defaults(func=_compare)
