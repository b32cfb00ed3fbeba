"""Fixtures for the web tests: one trained run, one real `pocketvision serve` process.

Every test module here is in xdist group "web", so under ``-n 2 --dist loadgroup`` all of them
share one worker, one run and one server process on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_support import Server, get


@pytest.fixture(scope="session")
def web_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LeNet-5 trained on digits by pocketvision.train, then evaluated (metrics + confusion)."""
    import torch

    from pocketvision.evaluate import evaluate
    from pocketvision.train import TrainConfig, train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("web") / "lenet5-digits"
    train(
        TrainConfig(
            data="digits",
            model="lenet5",
            epochs=8,
            augment="none",
            out=str(out),
            quiet=True,
            threads=1,
            device="cpu",
            workers=1,
        )
    )
    evaluate(out, split="test", device="cpu")
    return out


@pytest.fixture(scope="session")
def server(web_run: Path) -> Iterator[Server]:
    """`python -m pocketvision serve RUN --port 0` as a real process on 127.0.0.1.

    Port 0 lets the server pick a free port; the URL is read from the line it prints.
    """
    log = web_run.parent / "serve.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pocketvision", "serve", str(web_run)]
    command += ["--port", "0", "--threads", "1", "--workers", "2"]
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    url = ""
    try:
        deadline = time.monotonic() + 150  # the first start exports ONNX
        while True:
            if proc.poll() is not None:
                pytest.fail(f"serve exited with {proc.returncode}:\n{log.read_text()}")
            found = re.search(r"pocketvision serve: (http://127\.0\.0\.1:\d+)/", log.read_text())
            if found:
                url = found.group(1)
                try:
                    if get(url + "/api/health")[0] == 200:
                        break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve did not answer within 150 s:\n{log.read_text()}")
            time.sleep(0.25)
        yield Server(url=url, run=web_run, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
