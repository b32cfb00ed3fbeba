"""Disk full while training writes its checkpoint: a real, small tmpfs filled to the brim."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from pocketvision.train.checkpoint import load_state

ARGS = [
    "--data", "digits", "--model", "lenet5", "--epochs", "2", "--batch-size", "16",
    "--train-limit", "320", "--threads", "1", "--quiet", "--checkpoint-steps", "3",
    "--checkpoint-seconds", "1e9",
]  # fmt: skip


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)])
    if done.returncode:
        pytest.skip("mount -t tmpfs is not permitted here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _train(*extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pocketvision", "train", *ARGS, *extra]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_disk_full_mid_run_keeps_last_checkpoint_and_resume_works(tmpfs: Path) -> None:
    run = tmpfs / "run"
    last = run / "checkpoints" / "last.pt"
    command = [sys.executable, "-m", "pocketvision", "train", *ARGS, "--out", str(run)]
    proc = subprocess.Popen(command, env=ENV, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before the disk could be filled"
    filler = _fill(tmpfs)  # the next checkpoint (step 6 or the epoch's end) cannot be written
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no space left on device" in lines[0], err
    assert str(run) in lines[0]
    state = load_state(last)  # the last good checkpoint is intact and loadable
    assert state["state"]["epoch"] < 2
    assert not list(run.rglob("*.tmp"))
    filler.unlink()
    resumed = _train("--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(last, weights_only=True)["state"]["epoch"] == 2
    assert (run / "summary.json").is_file()
