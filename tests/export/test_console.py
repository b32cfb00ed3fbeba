"""A quiet console: other libraries' warnings, logs and progress bars stay out of the user's
way during ``pocketvision export`` and ``pocketvision profile``, and ``--verbose`` shows them.

``make test`` checks the quiet console on the whole job by default, in
tests/train/test_demo.py (``pocketvision demo``: train, evaluate, export to every format and
precision in isolated converters, profile in four runtimes); the two commands run on their
own here are ``extended``."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from export_support import make_run

from console_noise import noise as _noise
from pocketvision import console

SRC = Path(__file__).resolve().parents[2] / "src"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("POCKETVISION_VERBOSE", None)
    return subprocess.run(
        [sys.executable, "-m", "pocketvision", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_captured_takes_python_and_c_level_output_and_replays_it_when_verbose(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with console.captured() as noise:
        print("a print")
        os.write(2, b"a C-level line\n")
        warnings.warn("a library's future", FutureWarning, stacklevel=1)
    assert capfd.readouterr() == ("", "")
    assert "a print" in noise.lines() and "a C-level line" in noise.lines()
    assert any("FutureWarning: a library's future" in line for line in noise.lines())
    console.set_verbose(True)
    try:
        with console.captured():
            os.write(2, b"shown with --verbose\n")
    finally:
        console.set_verbose(False)
    assert "shown with --verbose" in capfd.readouterr().err


@pytest.mark.slow
@pytest.mark.extended  # the demo's test checks the same lines on the whole job
def test_export_and_profile_print_only_pocketvisions_lines(tmp_path: Path) -> None:
    run = make_run(tmp_path, "lenet5")
    export = ("export", str(run), "--verify-images", "20", "--calibration-images", "10")
    profile = ("profile", str(run), "--batch", "1", "--runs", "5")
    profile += ("--runtimes", "eager,onnxruntime,litert,executorch")
    printed = {}
    for args in (export, profile):
        done = _cli(*args)
        assert done.returncode == 0, done.stderr[-2000:]
        assert _noise(done.stdout) == [] and _noise(done.stderr) == [], args[0]
        printed[args[0]] = done.stdout
    assert "onnx" in printed["export"]  # our own table is still printed
    # one cheap format is enough to show that --verbose replays what the libraries printed
    quick = ("export", str(run), "--format", "onnx", "--quantize", "none", "--no-code")
    verbose = _cli(*quick, "--verbose", "--verify-images", "20", "--out", str(tmp_path / "v"))
    assert verbose.returncode == 0
    assert _noise(verbose.stderr + verbose.stdout), "--verbose shows what the libraries printed"
