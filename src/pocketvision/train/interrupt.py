"""SIGTERM and Ctrl-C during training: finish the step, write last.pt, exit non-zero.

A scheduler's SIGTERM (Slurm, Kubernetes, systemd) or a Ctrl-C sets a flag; the loop checks
it after each optimiser step, writes the checkpoint ``--resume`` continues from, and raises
:class:`Interrupted`, which the CLI prints as one line and turns into exit code 128 + signal
(130 for SIGINT, 143 for SIGTERM, as shells report a process killed by that signal).
Under torchrun every rank takes part in the decision, so all ranks stop after the same step.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import torch
import torch.distributed as dist

from pocketvision.errors import PocketvisionError
from pocketvision.train.distributed import Dist

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(PocketvisionError):
    """Training stopped by a signal after writing its checkpoint."""

    def __init__(self, signum: int, epoch: int, step: int, checkpoint: Path) -> None:
        self.exit_code = 128 + signum
        super().__init__(
            f"interrupted by {signal.Signals(signum).name} at epoch {epoch + 1} step {step}; "
            f"saved {checkpoint}; continue with --resume"
        )


class StopSignals:
    """Context manager: SIGINT/SIGTERM set ``received`` instead of ending the process.

    Outside the main thread (signal handlers cannot be set there) it does nothing.
    The previous handlers come back on exit.
    """

    def __init__(self) -> None:
        self.received = 0  # the signal number, 0 while none came
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = self.received or signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def agreed(self, d: Dist) -> int:
        """The signal to stop for, decided by all ranks together (0: go on).

        One tiny all-reduce per step under torchrun: ranks receive a forwarded signal at
        slightly different moments, and a rank that stopped alone would hang the others.
        """
        if d.world <= 1:
            return self.received
        device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
        flag = torch.tensor([self.received], dtype=torch.int64, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())
