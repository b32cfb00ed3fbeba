"""torchrun support: one process per device, DistributedDataParallel, only rank 0 writes.

``torchrun --nproc_per_node=N -m pocketvision train ...`` sets RANK, WORLD_SIZE and
LOCAL_RANK; we join the process group (gloo on CPU, NCCL on CUDA) and split every epoch's
shuffled indexes with DistributedSampler. Without those variables everything is one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> Dist:
    """Join the process group when launched by torchrun; a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(
                int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
            )
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def all_sum(values: list[float], d: Dist) -> list[float]:
    """Sum numbers over processes (loss sums, counts)."""
    if d.world <= 1:
        return values
    # NCCL reduces only CUDA tensors
    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.cpu().tolist()


def teardown(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def lost_peer(err: BaseException) -> bool:
    """True for the error a collective raises when another rank has died."""
    text = str(err)
    return isinstance(err, dist.DistError) or any(
        marker in text for marker in ("gloo", "Connection reset", "Connection closed", "NCCL")
    )


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:160]
