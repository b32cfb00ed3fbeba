"""SIGTERM and Ctrl-C during ``pocketvision train``: a real subprocess gets the signal
mid-epoch, writes last.pt after the step it is in, exits 143/130 with one line, and --resume
finishes it exactly as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ARGS = [
    "--data", "digits", "--model", "lenet5", "--epochs", "2", "--batch-size", "16",
    "--train-limit", "320", "--augment", "standard", "--ema", "--threads", "1", "--quiet",
    "--checkpoint-steps", "3", "--checkpoint-seconds", "1e9",
]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cli(*extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pocketvision", "train", *ARGS, *extra],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _history(run: Path) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [
        {k: v for k, v in r.items() if k not in ("seconds", "elapsed", "images_per_s")}
        for r in rows
    ]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "run"
    proc = _cli("--out", str(out))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


@pytest.mark.parametrize(
    ("sig", "code"),
    # one handler serves both; Ctrl-C's run is the slow suite's, to keep the default fast
    [(signal.SIGTERM, 143), pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow)],
)
def test_signal_mid_epoch_checkpoints_and_resumes_bit_identically(
    tmp_path: Path, clean_run: Path, sig: signal.Signals, code: int
) -> None:
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"
    proc = _cli("--out", str(run))
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # the first checkpoint (step 3) shows the loop is running
    assert proc.poll() is None, "the run ended before it could be signalled"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pocketvision: interrupted by {sig.name}")
    assert str(last) in lines[0] and "--resume" in lines[0]
    state = torch.load(last, weights_only=True)
    position = state["state"]
    # the checkpoint is the one written on the signal, mid-run (not a finished run)
    assert position["epoch"] < 2 and not (run / "summary.json").exists()
    said = lines[0].split(" at epoch ")[1]
    assert said.startswith(f"{position['epoch'] + 1} step {position['step']};")
    assert not list(run.rglob("*.tmp"))

    resumed = _cli("--out", str(run), "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert _history(run) == _history(clean_run)
    a = json.loads((run / "summary.json").read_text())
    b = json.loads((clean_run / "summary.json").read_text())
    assert (a["best_val_accuracy"], a["test_accuracy"], a["test_loss"]) == (
        b["best_val_accuracy"],
        b["test_accuracy"],
        b["test_loss"],
    )
    mine = load_file(str(run / "checkpoints" / "best.safetensors"))
    theirs = load_file(str(clean_run / "checkpoints" / "best.safetensors"))
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    final_a = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    final_b = torch.load(clean_run / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
