"""Helpers the training tests share (imported as ``train_support``, like web_support)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import torch


def kill_inside_second_epoch(proc: subprocess.Popen[bytes], out: Path) -> None:
    """``kill -9`` a ``pocketvision train --out OUT`` process once it is inside epoch 2 with a
    mid-epoch checkpoint on disk, so a resume starts from the middle of an epoch."""
    last = out / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if last.exists() and (out / "metrics.jsonl").exists():
            state = torch.load(last, weights_only=True)
            if state["state"]["epoch"] >= 1 and state["state"]["step"] > 0:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
