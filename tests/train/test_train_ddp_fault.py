"""One of two torchrun workers killed with SIGKILL mid-epoch: the job stops at once with one
line on the surviving rank, and --resume under torchrun finishes it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ARGS = ["--data", "digits", "--model", "lenet5", "--epochs", "3", "--batch-size", "32",
        "--threads", "1", "--quiet", "--checkpoint-steps", "3", "--checkpoint-seconds", "1e9"]  # fmt: skip
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _workers(out: Path) -> list[int]:
    listing = subprocess.run(
        ["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True
    ).stdout
    return [
        int(line.split()[0])
        for line in listing.splitlines()
        if f"--out {out}" in line and "pocketvision train" in line and "distributed.run" not in line
    ]


def test_killed_worker_stops_the_job_with_one_line_and_resume_finishes(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    command = [*TORCHRUN, "-m", "pocketvision", "train", *ARGS, "--out", str(out)]
    job = subprocess.Popen(command, env=ENV, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoints" / "last.pt").exists() and time.monotonic() < deadline:
        assert job.poll() is None, "the job ended before a worker could be killed"
        time.sleep(0.02)
    workers = _workers(out)
    assert len(workers) == 2
    os.kill(max(workers), 9)
    killed_at = time.monotonic()
    _, err = job.communicate(timeout=120)
    assert time.monotonic() - killed_at < 60  # no hang
    assert job.returncode != 0
    said = [line for line in err.splitlines() if line.startswith("pocketvision: error: rank")]
    assert said and "another process of the job stopped" in said[0] and "--resume" in said[0]
    assert "RuntimeError" not in err  # torchrun's own ChildFailedError report stays
    resumed = subprocess.run(
        [*TORCHRUN, "-m", "pocketvision", "train", *ARGS, "--out", str(out), "--resume"],
        env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (out / "summary.json").is_file()


def test_sigterm_to_one_worker_stops_every_rank_after_the_same_step(tmp_path: Path) -> None:
    """Every rank takes part in the decision to stop, so a signal to one of them (as a
    scheduler might send) stops all after one step, with last.pt written, and no rank sees
    the other vanish."""
    import torch

    out = tmp_path / "ddp"
    command = [*TORCHRUN, "-m", "pocketvision", "train", *ARGS, "--out", str(out)]
    job = subprocess.Popen(command, env=ENV, stderr=subprocess.PIPE, text=True)
    last = out / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline:
        assert job.poll() is None, "the job ended before a worker could be signalled"
        time.sleep(0.02)
    workers = _workers(out)
    assert len(workers) == 2
    os.kill(max(workers), 15)
    _, err = job.communicate(timeout=120)
    assert job.returncode != 0
    said = [line for line in err.splitlines() if line.startswith("pocketvision: interrupted")]
    assert said and "SIGTERM" in said[0] and "--resume" in said[0], err[-2000:]
    assert "another process of the job stopped" not in err  # they stopped together
    position = torch.load(last, weights_only=True)["state"]
    assert position["epoch"] < 3 and not (out / "summary.json").exists()
    resumed = subprocess.run(
        [*TORCHRUN, "-m", "pocketvision", "train", *ARGS, "--out", str(out), "--resume"],
        env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (out / "summary.json").is_file()
