"""What a run records beside its numbers: environment, metrics.csv, the printed summary."""

from __future__ import annotations

import csv
import io
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import pocketvision


def _git_commit() -> str | None:
    try:
        root = Path(pocketvision.__file__).resolve().parents[2]
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Code version and hardware: enough to say where a number came from."""
    env: dict[str, Any] = {
        "pocketvision": pocketvision.__version__,
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


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
    if summary["num_bad_files"]:
        lines.append(f"bad files:  {summary['num_bad_files']} skipped (bad_files.txt)")
    print("\n".join(lines))
