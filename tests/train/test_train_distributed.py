"""torchrun with 2 CPU processes (gloo, DistributedSampler) matches a single process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = ["--data", "digits", "--model", "lenet5", "--epochs", "8", "--batch-size", "64",
        "--threads", "1", "--quiet"]  # fmt: skip


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "pocketvision", "train", *ARGS, "--out", str(tmp_path / "ddp")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    single = subprocess.run(
        [sys.executable, "-m", "pocketvision", "train", *ARGS, "--out", str(tmp_path / "one")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-2000:]
    a = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    b = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert a["world_size"] == 2 and b["world_size"] == 1
    assert a["epochs"] == b["epochs"] == 8
    # same global batch and schedule; different shuffles, so equal within noise
    assert a["test_accuracy"] > 0.8 and b["test_accuracy"] > 0.8
    assert abs(a["test_accuracy"] - b["test_accuracy"]) < 0.06
    rows = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    # only rank 0 writes, so no second writer left a half-renamed temp file
    assert not list((tmp_path / "ddp").rglob("*.tmp"))
