"""--resume after kill -9: a real subprocess killed mid-epoch, resumed, compared to a clean run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_support import kill_inside_second_epoch

ARGS = [
    "--data", "digits", "--model", "lenet5", "--epochs", "3", "--batch-size", "16", "--train-limit", "480",
    "--augment", "standard", "--ema", "--threads", "1", "--quiet",
    "--checkpoint-steps", "7", "--checkpoint-seconds", "1e9",
]  # fmt: skip


def _cli(*extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "pocketvision", "train", *ARGS, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _history(run: Path) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # timings differ between runs; everything computed must not
    return [
        {k: v for k, v in r.items() if k not in ("seconds", "elapsed", "images_per_s")}
        for r in rows
    ]


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    reference = _cli("--out", str(clean))
    proc = _cli("--out", str(killed))
    kill_inside_second_epoch(proc, killed)
    last = killed / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    assert state["state"]["step"] > 0  # the checkpoint it resumes from is mid-epoch
    resumed = _cli("--out", str(killed), "--resume")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    reference.communicate(timeout=300)
    assert reference.returncode == 0
    # same epochs, same losses and accuracies to the last digit: the resumed run replayed
    # exactly the batches, augmentations and optimizer/EMA states of the clean run
    assert _history(killed) == _history(clean)
    assert len(_history(killed)) == 3
    a = json.loads((killed / "summary.json").read_text())
    b = json.loads((clean / "summary.json").read_text())
    assert (
        a["best_val_accuracy"] == b["best_val_accuracy"]
        and a["test_accuracy"] == b["test_accuracy"]
    )
    assert a["epochs"] == 3
