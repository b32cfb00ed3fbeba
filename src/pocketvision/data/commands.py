"""``pocketvision inspect DATA``: the data inspector's command line (library:
:mod:`pocketvision.data.inspection`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

# Rows of each group table before "... and N more (--json lists all)".
SHOWN = 15


def _files_text(group: dict[str, Any], limit: int = 3) -> str:
    names = [f"{f['path']} ({f['class']}/{f['split']})" for f in group["files"][:limit]]
    more = len(group["files"]) - limit
    return "\n".join(names) + (f"\n... {more} more" if more > 0 else "")


def _group_table(title: str, groups: list[dict[str, Any]]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{title}: {len(groups)} group(s)", title_justify="left")
    table.add_column("images", justify="right")
    table.add_column("match")
    table.add_column("classes")
    table.add_column("splits")
    table.add_column("files", overflow="fold")
    for g in groups[:SHOWN]:
        match = "exact" if "sha256" in g else f"near <= {g['max_distance']} bits"
        classes = Text(", ".join(g["classes"]), style="red" if g["across_classes"] else "")
        splits = Text(", ".join(g["splits"]), style="red" if len(g["splits"]) > 1 else "")
        table.add_row(str(len(g["files"])), match, classes, splits, Text(_files_text(g)))
    if len(groups) > SHOWN:
        table.caption = f"... and {len(groups) - SHOWN} more (--json lists all)"
    return table


def _class_table(classes: dict[str, Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="classes", title_justify="left")
    table.add_column("class")
    for name in ("train", "val", "test", "total"):
        table.add_column(name, justify="right")
    for name, row in classes["counts"].items():
        table.add_row(Text(name), *(str(row[k]) for k in ("train", "val", "test", "total")))
    return table


def _class_lines(classes: dict[str, Any]) -> list[str]:
    ratio = classes["imbalance_ratio"]
    sizes = classes["sizes"]
    common = ", ".join(f"{size} ({n})" for size, n in list(sizes["most_common"].items())[:3])
    return [
        "imbalance (largest / smallest training class): "
        + ("n/a" if ratio is None else f"{ratio:g}:1"),
        f"sizes: {sizes['distinct']} distinct, {sizes['min']} to {sizes['max']} (w, h); "
        f"most common {common}",
        "modes: " + ", ".join(f"{m} ({n})" for m, n in classes["modes"].items()),
    ]


def print_report(report: dict[str, Any]) -> None:
    """The text form of :func:`pocketvision.data.inspection.to_json`'s report."""
    from rich.console import Console
    from rich.text import Text

    console = Console()
    console.print(_class_table(report["classes"]))
    for line in _class_lines(report["classes"]):
        console.print(Text(line), soft_wrap=True)
    console.print(_group_table("leakage across splits", report["leakage"]))
    console.print(_group_table("exact duplicates", report["duplicates"]))
    console.print(_group_table("near duplicates", report["near_duplicates"]))
    bad = report["bad_files"]
    console.print(Text(f"bad files (training skips them): {len(bad)}"))
    for entry in bad[:SHOWN]:
        console.print(Text(f"  {entry['path']}: {entry['reason']}"), soft_wrap=True)
    if len(bad) > SHOWN:
        console.print(Text(f"  ... and {len(bad) - SHOWN} more (--json lists all)"))


def _inspect(args: argparse.Namespace) -> int:
    from pocketvision.data.inspection import inspect_data, to_json, write_contact_sheet

    options = {} if args.max_distance is None else {"max_distance": args.max_distance}
    found = inspect_data(args.data, workers=args.workers, **options)
    report = to_json(found)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    if args.sheet:
        rows = write_contact_sheet(found, Path(args.sheet))
        if not args.json:
            print(f"wrote {args.sheet} ({rows} group(s))")
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``inspect`` to the ``pocketvision`` parser."""
    inspect = subparsers.add_parser(
        "inspect",
        help="find duplicates, near duplicates, split leakage, imbalance and bad files in a data set",
        description="Inspect a data set before training: exact duplicates (SHA-256), near "
        "duplicates (perceptual hash) within and across classes and across train/val/test, "
        "class counts, image sizes and modes, and the files training would skip.",
    )
    inspect.add_argument("data", help="folder per class (optionally in train/val/test), CSV, ...")
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    inspect.add_argument("--sheet", metavar="PATH", help="write a contact-sheet PNG of the groups")
    inspect.add_argument(
        "--max-distance",
        type=int,
        default=None,
        metavar="BITS",
        help="phash bits (of 64) that may differ in a near duplicate (default: 6)",
    )
    inspect.add_argument(
        "--workers", type=int, default=None, help="reading threads (default: CPUs)"
    )
    inspect.set_defaults(func=_inspect)
