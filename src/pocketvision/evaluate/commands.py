"""CLI: ``pocketvision evaluate`` and ``pocketvision predict`` (thin wrappers)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

from pocketvision.errors import PocketvisionError

DEVICES = ("auto", "cpu", "cuda", "mps")


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"


def _print_evaluation(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    # Text, not markup: labels and paths may hold "[" (rich would eat "[x]" as a tag)
    console.print(
        Text.assemble(
            (result["model"], "bold"),
            f" on {result['data']} ({result['split']} split), run {result['run']}",
        ),
        soft_wrap=True,
    )
    summary = Table()
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    rows = [
        ("images", str(result["num_images"])),
        ("accuracy", _pct(result["accuracy"])),
        ("top-5 accuracy", _pct(result["top5_accuracy"])),
        ("macro precision", _pct(result["macro_precision"])),
        ("macro recall", _pct(result["macro_recall"])),
        ("macro F1", _pct(result["macro_f1"])),
        ("log loss", f"{result['log_loss']:.4f}"),
        ("ECE (15 bins)", _pct(result["ece"])),
        ("images/s", f"{result['images_per_s']:.0f}" if result["images_per_s"] else "-"),
        ("bad files skipped", str(result["num_bad_files"])),
    ]
    for name, value in rows:
        summary.add_row(name, value)
    console.print(summary)

    per_class = Table(title="per class", title_justify="left")
    for col in ("label", "precision", "recall", "F1", "support"):
        per_class.add_column(col, justify="left" if col == "label" else "right")
    for row in result["per_class"]:
        per_class.add_row(
            Text(row["label"]),
            _pct(row["precision"]),
            _pct(row["recall"]),
            _pct(row["f1"]),
            str(row["support"]),
        )
    console.print(per_class)
    run = Path(result["run"])
    for name in ("metrics.json", "confusion_matrix.png", "mistakes.png"):
        console.print(Text(f"wrote {run / name}"), soft_wrap=True)


def _evaluate(args: argparse.Namespace) -> int:
    from pocketvision.evaluate.evaluation import evaluate

    result = evaluate(
        args.run, data=args.data, split=args.split, batch_size=args.batch_size, device=args.device
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_evaluation(result)
    return 0


def _csv_text(results: list[dict[str, Any]], topk: int) -> str:
    # wide form: one row per file, so it opens as a readable spreadsheet
    buf = io.StringIO()
    writer = csv.writer(buf)
    header = ["path"]
    for r in range(1, topk + 1):
        header += [f"label_{r}", f"probability_{r}"]
    writer.writerow([*header, "error"])
    for entry in results:
        row = [entry["path"]]
        preds = entry.get("predictions", [])
        for r in range(topk):
            row += (
                [preds[r]["label"], f"{preds[r]['probability']:.6f}"]
                if r < len(preds)
                else ["", ""]
            )
        writer.writerow([*row, entry.get("error", "")])
    return buf.getvalue()


def _print_predictions(results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("path", overflow="fold")
    table.add_column("predictions")
    for entry in results:
        if "error" in entry:
            table.add_row(Text(entry["path"]), Text(f"error: {entry['error']}", style="red"))
        else:
            text = ", ".join(
                f"{p['label']} {100 * p['probability']:.1f}%" for p in entry["predictions"]
            )
            table.add_row(Text(entry["path"]), Text(text))
    Console().print(table)


def _predict(args: argparse.Namespace) -> int:
    from pocketvision.evaluate.prediction import predict
    from pocketvision.files import write_atomic

    if args.topk < 1:
        raise PocketvisionError(f"--topk {args.topk}: must be at least 1")
    results = predict(
        args.run, args.inputs, args.topk, batch_size=args.batch_size, device=args.device
    )
    if args.json:
        print(json.dumps(results, indent=2))
    elif args.csv:
        width = max((len(e.get("predictions", [])) for e in results), default=0)
        write_atomic(Path(args.csv), _csv_text(results, width))
        print(f"wrote {len(results)} rows to {args.csv}")
    else:
        _print_predictions(results)
    failed = sum("error" in e for e in results)
    if failed:
        print(
            f"pocketvision: skipped {failed} of {len(results)} files (see errors)", file=sys.stderr
        )
    # partial failures are reported, not fatal; only "nothing could be predicted" fails
    return 1 if failed == len(results) else 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``evaluate`` and ``predict`` to the ``pocketvision`` parser."""
    ev = subparsers.add_parser(
        "evaluate",
        help="accuracy, top-5, per-class P/R/F1, log loss, calibration; confusion matrix",
        description="Evaluate a trained run; writes metrics.json, confusion_matrix.png and "
        "mistakes.png into the run directory.",
    )
    ev.add_argument("run", help="run directory written by `pocketvision train`")
    ev.add_argument("--data", help="labelled data to evaluate on (default: the run's own)")
    ev.add_argument(
        "--split",
        choices=("val", "test", "all"),
        default="val",
        help="val: the run's validation split; test: the dataset's test split; all: every image",
    )
    ev.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ev.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    ev.add_argument("--device", choices=DEVICES, default="auto", help="where to run the model")
    ev.set_defaults(func=_evaluate)

    pr = subparsers.add_parser(
        "predict",
        help="top-k labels and probabilities for image files or folders",
        description="Predict labels for images with a trained run. Unreadable files are "
        "reported and skipped; exit code 1 only when no file could be predicted.",
    )
    pr.add_argument("run", help="run directory written by `pocketvision train`")
    pr.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files or folders")
    pr.add_argument("--topk", type=int, default=3, help="predictions per image (default 3)")
    out = pr.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print a JSON list")
    out.add_argument("--csv", metavar="FILE", help="write a CSV file, one row per image")
    pr.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    pr.add_argument("--device", choices=DEVICES, default="auto", help="where to run the model")
    pr.set_defaults(func=_predict)
