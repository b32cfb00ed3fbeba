"""The mobile zoo as an app developer compares it: published ImageNet top-1, params, MACs and
measured batch-1 latency in the fastest deploy runtime on this machine, the Pareto front
(nothing else is both at least as accurate and at least as fast) marked (issue 13).

Reads the ``zoo`` rows of a ``benchmarks/latency.py`` result (each model at the input its
top-1 is for) and writes a Markdown table and a plot beside it:

    python benchmarks/latency.py --parts zoo --threads 1 --out benchmarks/results/latency_zoo_1t.json
    python benchmarks/zoo_pareto.py              # -> results/zoo_pareto.md, zoo_pareto.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def rows(latency: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per measured zoo model, fastest first, each with ``front`` set."""
    from pocketvision import model_info

    out = []
    for row in latency["rows"]:
        if row.get("part") != "zoo" or "error" in row:
            continue
        best = row["summary"]["1"]
        if best["fastest_deploy_ms"] is None:
            continue
        info = model_info(row["model"])
        out.append(
            {
                "model": row["model"],
                "family": info.family,
                "input": row["input_size"][-1],
                "top1": info.top1,
                "params": row["params"],
                "macs": row["macs"],
                "runtime": best["fastest_deploy"],
                "ms": best["fastest_deploy_ms"],
            }
        )
    out.sort(key=lambda r: (r["ms"], -(r["top1"] or 0.0)))  # a tie goes to the more accurate
    best_top1 = float("-inf")
    for r in out:  # fastest first: on the front when more accurate than everything faster
        r["front"] = r["top1"] is not None and r["top1"] > best_top1
        if r["front"]:
            best_top1 = r["top1"]
    return out


def markdown(entries: list[dict[str, Any]], source: str, threads: int) -> str:
    lines = [
        f"Measured by `{source}` ({threads} thread(s), batch 1, fp32; median ms of the fastest "
        "of ONNX Runtime, LiteRT and ExecuTorch); top-1 is the paper's ImageNet figure; "
        "**bold**: on the Pareto front of top-1 against latency.",
        "",
        "| model | input | top-1 % | params | MMACs | fastest deploy | ms | front |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in entries:
        name = f"**{r['model']}**" if r["front"] else r["model"]
        lines.append(
            f"| {name} | {r['input']} | {r['top1']} | {r['params'] / 1e6:.2f}M | "
            f"{r['macs'] / 1e6:,.0f} | {r['runtime']} | {r['ms']:.2f} | "
            f"{'yes' if r['front'] else ''} |"
        )
    return "\n".join(lines) + "\n"


def plot(entries: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    families = sorted({r["family"] for r in entries})
    for family in families:
        mine = [r for r in entries if r["family"] == family]
        ax.scatter(
            [r["ms"] for r in mine],
            [r["top1"] for r in mine],
            s=[20 + r["params"] / 1e5 for r in mine],
            label=family,
            alpha=0.7,
        )
    front = [r for r in entries if r["front"]]
    ax.plot([r["ms"] for r in front], [r["top1"] for r in front], "k--", lw=1, label="front")
    for r in front:
        ax.annotate(r["model"], (r["ms"], r["top1"]), fontsize=7, xytext=(4, -3),
                    textcoords="offset points")  # fmt: skip
    ax.set(xscale="log", xlabel="batch-1 latency, fastest deploy runtime (ms, log)",
           ylabel="published ImageNet top-1 (%)", title="mobile zoo on this machine")  # fmt: skip
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=Path, default=RESULTS / "latency_zoo_1t.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "zoo_pareto.md")
    args = parser.parse_args()
    latency = json.loads(args.latency.read_text())
    entries = rows(latency)
    text = markdown(entries, latency["command"], latency["threads"])
    args.out.write_text(text)
    plot(entries, args.out.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    main()
