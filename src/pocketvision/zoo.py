"""The zoo table: every registered model with its freshly counted params and MACs."""

from __future__ import annotations

from typing import Any

import torch

from pocketvision import create_model, list_models, model_info
from pocketvision.profile.counting import count_macs, count_params


def zoo_rows(pattern: str | None = None) -> list[dict[str, Any]]:
    """One row per registered model: counts recomputed on the meta device, paper data recorded.

    Each row has name, family, params, macs, input_size, published_params, published_macs,
    top1, paper, year, arxiv.
    """
    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        with torch.device("meta"):
            model = create_model(name, num_classes=info.num_classes, in_chans=info.input_size[0])
        rows.append(
            {
                "name": name,
                "family": info.family,
                "params": count_params(model),
                "macs": count_macs(model, info.input_size),
                "input_size": list(info.input_size),
                "published_params": info.params,
                "published_macs": info.macs,
                "top1": info.top1,
                "paper": info.paper,
                "year": info.year,
                "arxiv": info.arxiv,
            }
        )
    return rows


def _millions(n: int) -> str:
    return f"{n / 1e6:,.2f}M" if n < 1e9 else f"{n / 1e9:,.2f}G"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of :func:`zoo_rows` output, as in the README."""
    lines = [
        "| model | family | params | MACs | input | ImageNet top-1 | paper |",
        "|---|---|---:|---:|---|---:|---|",
    ]
    for r in rows:
        c, h, w = r["input_size"]
        top1 = f"{r['top1']:.1f}" if r["top1"] is not None else "-"
        arxiv = f", arXiv:{r['arxiv']}" if r["arxiv"] else ""
        lines.append(
            f"| {r['name']} | {r['family']} | {r['params']:,} | {_millions(r['macs'])} "
            f"| {c}x{h}x{w} | {top1} | {r['paper']} ({r['year']}{arxiv}) |"
        )
    return "\n".join(lines)


def small_input_table() -> str:
    """A Markdown table of what ``small_input=True`` changes, one row per distinct change."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name in list_models():
        info = model_info(name)
        groups.setdefault((info.family, info.small_input), []).append(name)
    lines = ["| models | what `small_input=True` changes |", "|---|---|"]
    for (_, change), names in groups.items():
        lines.append(f"| {', '.join(names)} | {change} |")
    return "\n".join(lines)
