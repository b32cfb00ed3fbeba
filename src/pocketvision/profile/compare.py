"""``pocketvision compare``: the zoo (or your runs) side by side on this machine.

A table (Markdown and HTML) of params, MACs, size, latency per runtime and accuracy where a run
exists, and Pareto plots: accuracy vs MACs, accuracy vs latency, latency vs MACs with the
roofline line (the latency the measured matmul peak would give).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pocketvision import list_models, model_info
from pocketvision.profile.profiler import ProfileResult, profile
from pocketvision.rundir import is_run_dir, read_summary

COMPARE_RUNTIMES = ("eager", "onnxruntime")


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which (cost, quality) points no other point beats on both (lower cost, higher quality)."""
    front = []
    for i, (cost, quality) in enumerate(points):
        dominated = any(
            (c <= cost and q >= quality) and (c < cost or q > quality)
            for j, (c, q) in enumerate(points)
            if j != i
        )
        front.append(not dominated)
    return front


def _accuracy(target: str) -> float | None:
    data = read_summary(target) if is_run_dir(target) else None
    if data is None:
        return None
    acc = data.get("test_accuracy") or data.get("best_val_accuracy")
    return float(acc) if acc is not None else None


def _paper_top1(name: str) -> float | None:
    top1 = model_info(name).top1
    return None if top1 is None else top1 / 100


def _latency(result: ProfileResult, runtime: str) -> float | None:
    for r in result.runtimes:
        if r.runtime == runtime and r.batch == 1 and r.status == "ok":
            return r.median_ms
    return None


def compare(
    targets: Sequence[str] | None = None,
    *,
    input_size: int | None = 224,
    runtime_names: Sequence[str] = COMPARE_RUNTIMES,
    out: str | Path = "compare",
    threads: int | None = None,
    runs: int = 30,
    log: Callable[[str], None] | None = None,
    budget_s: float | None = 5.0,
) -> list[dict[str, Any]]:
    """Profile every target at batch 1 and write compare.md, compare.html, compare.json and plots.

    Args:
        targets: Registered names or run directories (default: the whole registry).
        input_size: Square input size for registered models (runs keep their own unless given).
        budget_s: Seconds of timed calls per model and runtime, after which timing stops
            (at least 5 runs): VGG16 takes ~1 s a call in eager on 2 cores, and the whole
            registry must fit in 10 minutes. None: always ``runs`` calls.
    """
    targets = list(targets) if targets else list_models()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for target in targets:
        is_run = is_run_dir(target)
        # runs keep their trained size; LeNet's 32x32 is the only size it was designed for
        size = None if is_run or target.startswith("lenet") else input_size
        result = profile(
            target,
            input_size=size,
            batches=(1,),
            threads=threads,
            runtime_names=runtime_names,
            runs=runs,
            log=log,
            budget_s=budget_s,
        )
        row: dict[str, Any] = {
            "target": target,
            "model": result.model,
            "params": result.params,
            "macs": result.macs,
            "input_size": result.input_size,
            "size_fp32": result.size_bytes["fp32"],
            "size_int8": result.size_bytes["int8"],
            "accuracy": _accuracy(target),
            "paper_top1": _paper_top1(result.model) if not is_run and size == 224 else None,
            "peak_gflops": result.peak_gflops,
            "latency_ms": {rt: _latency(result, rt) for rt in runtime_names},
            "profile": asdict(result),
        }
        rows.append(row)
    _mark_pareto(rows)
    (out / "compare.json").write_text(json.dumps(rows, indent=2))
    (out / "compare.md").write_text(markdown(rows, runtime_names))
    (out / "compare.html").write_text(html_table(rows, runtime_names))
    plot(rows, out)
    return rows


def _best_latency(row: dict[str, Any]) -> float | None:
    values = [v for v in row["latency_ms"].values() if v is not None]
    return min(values) if values else None


def _quality(row: dict[str, Any]) -> float | None:
    """The run's accuracy where there is a run, else the paper's ImageNet top-1 (as a fraction)."""
    return row["accuracy"] if row["accuracy"] is not None else row["paper_top1"]


def _mark_pareto(rows: list[dict[str, Any]]) -> None:
    # Pareto-optimal: no other model is both faster (best runtime, batch 1) and more accurate.
    usable = [r for r in rows if _best_latency(r) is not None and _quality(r) is not None]
    points = [(float(_best_latency(r) or 0), float(_quality(r) or 0)) for r in usable]
    for row in rows:
        row["pareto"] = False
    for row, on_front in zip(usable, pareto_front(points), strict=True):
        row["pareto"] = on_front


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _cells(row: dict[str, Any], runtime_names: Sequence[str]) -> list[str]:
    c, h, w = row["input_size"]
    acc = _quality(row)
    return [
        row["target"] + (" *" if row["pareto"] else ""),
        f"{row['params'] / 1e6:.2f}M",
        f"{row['macs'] / 1e6:.1f}M",
        f"{c}x{h}x{w}",
        f"{row['size_fp32'] / 2**20:.1f}",
        f"{row['size_int8'] / 2**20:.1f}",
        *[_fmt(row["latency_ms"][rt], ".2f") for rt in runtime_names],
        "-" if acc is None else f"{100 * acc:.2f}",
    ]


def _header(runtime_names: Sequence[str]) -> list[str]:
    return [
        "model (* Pareto)",
        "params",
        "MACs",
        "input",
        "fp32 MiB",
        "int8 MiB",
        *[f"{rt} ms (b=1)" for rt in runtime_names],
        "accuracy % (run, else paper ImageNet top-1)",
    ]


def markdown(rows: list[dict[str, Any]], runtime_names: Sequence[str]) -> str:
    header = _header(runtime_names)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cells(r, runtime_names)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def html_table(rows: list[dict[str, Any]], runtime_names: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _header(runtime_names))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r, runtime_names)) + "</tr>"
        for r in rows
    )
    return (
        "<!doctype html><meta charset='utf-8'><title>pocketvision compare</title>"
        "<style>td,th{padding:2px 8px;text-align:right}td:first-child{text-align:left}</style>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        "<p><img src='latency_vs_macs.png'> <img src='accuracy_vs_macs.png'> "
        "<img src='accuracy_vs_latency.png'></p>\n"
    )


def plot(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Write the Pareto plots that the data supports; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    timed = [r for r in rows if _best_latency(r) is not None]
    if timed:
        fig, ax = plt.subplots(figsize=(7, 5))
        macs = [r["macs"] / 1e6 for r in timed]
        lat = [float(_best_latency(r) or 0) for r in timed]
        ax.scatter(macs, lat, c=["tab:red" if r["pareto"] else "tab:blue" for r in timed])
        for r, x, y in zip(timed, macs, lat, strict=True):
            ax.annotate(r["target"], (x, y), fontsize=6)
        peak = timed[0]["peak_gflops"]
        xs = sorted(macs)
        ax.plot(xs, [2 * m * 1e6 / (peak * 1e9) * 1e3 for m in xs], "k--", label="roofline")
        ax.set(xscale="log", yscale="log", xlabel="MACs (M)", ylabel="best latency, batch 1 (ms)")
        ax.set_title(f"Latency vs MACs (matmul peak {peak:.0f} GFLOP/s)")
        ax.legend()
        written.append(_save(fig, out / "latency_vs_macs.png"))
    scored = [r for r in timed if _quality(r) is not None]
    if scored:
        for key, label, name in (
            ("macs", "MACs (M)", "accuracy_vs_macs.png"),
            ("latency", "best latency, batch 1 (ms)", "accuracy_vs_latency.png"),
        ):
            fig, ax = plt.subplots(figsize=(7, 5))
            xs_ = [
                r["macs"] / 1e6 if key == "macs" else float(_best_latency(r) or 0) for r in scored
            ]
            ys = [100 * float(_quality(r) or 0) for r in scored]
            front = pareto_front([(float(x or 0), y) for x, y in zip(xs_, ys, strict=True)])
            ax.scatter(xs_, ys, c=["tab:red" if f else "tab:blue" for f in front])
            for r, x, y in zip(scored, xs_, ys, strict=True):
                ax.annotate(r["target"], (x, y), fontsize=6)
            ax.set(xscale="log", xlabel=label, ylabel="accuracy (%)", title="red: Pareto-optimal")
            written.append(_save(fig, out / name))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
