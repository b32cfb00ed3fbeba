"""pocketvision demo: without Fashion-MNIST it says so, trains on digits, and still runs the
whole job: evaluate, export to every installed format (each file checked), profile. It runs
as a user runs it, in a fresh process, and its console holds pocketvision's own lines only:
none of the warnings, logs and progress bars the converters and runtimes print (the quiet
console of issue 12, checked here on every format and precision by default)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from console_noise import noise

SRC = Path(__file__).resolve().parents[2] / "src"
# the demo as `pocketvision demo` runs it, with no Debian package and no network to find
# Fashion-MNIST in
_DEMO = """
import sys
from pathlib import Path
from pocketvision.cli import main
from pocketvision.data import builtin
builtin.DEBIAN_DIR = Path(sys.argv[1]) / "none"
builtin.FASHION_MNIST_URL = "http://127.0.0.1:9/"
sys.exit(main(["demo", "--epochs", "2", "--out", sys.argv[2]]))
"""


@pytest.mark.slow
def test_demo_falls_back_to_digits_runs_the_whole_job_and_prints_only_its_own_lines(
    tmp_path: Path,
) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(SRC)}
    for name in ("POCKETVISION_DATA", "POCKETVISION_VERBOSE"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", _DEMO, str(tmp_path), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    assert "Fashion-MNIST unavailable" in printed and "digits instead" in printed
    assert "test accuracy on digits" in printed
    assert (out / "summary.json").exists() and (out / "checkpoints" / "best.safetensors").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert metrics["accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-5)
    report = json.loads((out / "export" / "export_report.json").read_text())
    formats = {r["format"] for r in report}
    assert {"onnx", "tflite", "executorch", "coreml"} <= formats
    assert {r["precision"] for r in report} >= {"fp32", "fp16", "int8"}
    for row in report:
        assert row["status"] in ("ok", "unverified"), row
        if row["precision"] == "fp32" and row["status"] == "ok":
            assert row["max_abs_diff"] <= 1e-4 and row["top1_agreement"] == 1.0
    profiled = [line for line in printed.splitlines() if line.startswith("demo: profile:")]
    assert len(profiled) == 4 and all(": ok " in line for line in profiled), profiled
    # our own lines and tables only; what the libraries printed is kept for --verbose
    assert noise(done.stdout) == [] and noise(done.stderr) == [], noise(done.stdout + done.stderr)
