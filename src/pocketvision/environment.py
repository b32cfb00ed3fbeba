"""Where a number came from and where code runs: one machine record, one device resolver.

Every run's summary.json and every benchmark's JSON carry :func:`environment`; training,
evaluation, prediction and serving all choose their device through :func:`resolve_device`.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from pocketvision.errors import PocketvisionError

DEVICES = ("auto", "cpu", "cuda", "mps")


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
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


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), or the platform's best guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Code version and hardware: enough to say where a number came from.

    Keys: pocketvision, git_commit, python, torch, numpy, platform, machine, cpu,
    cpu_count (logical cores of the machine), torch_threads (what PyTorch uses now), and
    gpu (its name) when CUDA is available.
    """
    import numpy

    from pocketvision import __version__

    env: dict[str, Any] = {
        "pocketvision": __version__,
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """ "auto" picks CUDA, then Apple's MPS, then the CPU; a named device must exist.

    Args:
        name: One of :data:`DEVICES`.
        local_rank: This process's index on the machine (torchrun); picks the CUDA device.

    Raises:
        PocketvisionError: Unknown name, or the named device is not available here.
    """
    if name not in DEVICES:
        raise PocketvisionError(f"--device {name}: unknown; use {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise PocketvisionError("--device cuda: no CUDA device here; use --device cpu or auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not torch.backends.mps.is_available():
        raise PocketvisionError(
            "--device mps: Apple MPS is not available; use --device cpu or auto"
        )
    return torch.device(name)
