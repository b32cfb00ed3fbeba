"""What a run records beside its numbers: metrics.csv and the printed summary (the machine
record is :func:`pocketvision.environment.environment`)."""

from __future__ import annotations

import csv
import io
from typing import Any


def metrics_csv(history: list[dict[str, Any]]) -> str:
    """metrics.jsonl's rows as CSV text."""
    if not history:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def print_summary(summary: dict[str, Any]) -> None:
    """The clean end-of-run summary."""
    test = summary.get("test_accuracy")
    lines = [
        f"run:        {summary['run_dir']}",
        f"model:      {summary['model']} ({summary['params']:,} params) on {summary['data']}",
        f"epochs:     {summary['epochs']}{' (stopped early)' if summary['stopped_early'] else ''}"
        f" in {summary['seconds']:.1f} s, {summary['images_per_s']:.0f} images/s",
        f"val acc:    {100 * summary['best_val_accuracy']:.2f}% (best, epoch {summary['best_epoch']})",
    ]
    if test is not None:
        lines.append(f"test acc:   {100 * test:.2f}% ({summary['num_test']} images)")
    recall = summary.get("per_class_recall")
    if recall:
        per_class = ", ".join(
            f"{label} {'n/a' if v is None else f'{100 * v:.1f}%'}"
            for label, v in list(recall["recall"].items())[:10]
        )
        more = " ..." if len(recall["recall"]) > 10 else ""
        lines.append(
            f"recall:     {per_class}{more} (macro {100 * recall['macro_recall']:.2f}%, "
            f"{recall['split']})"
        )
    if summary["num_bad_files"]:
        lines.append(f"bad files:  {summary['num_bad_files']} skipped (bad_files.txt)")
    print("\n".join(lines))
