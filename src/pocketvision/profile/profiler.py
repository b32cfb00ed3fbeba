"""``pocketvision profile``: quality-free numbers of one model, across runtimes.

Params and MACs (recounted), peak activation memory, bytes on disk at fp32/fp16/int8, and per
installed runtime and batch size: latency median and p90 over >= 30 timed runs after warm-up,
images/s, effective GFLOP/s and its fraction of the machine's fp32 matmul peak measured in the
same run, and peak process memory. A runtime that is not installed is skipped with a reason; one
that fails is reported as failed, and the others continue.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pocketvision.errors import PocketvisionError
from pocketvision.profile import runtimes
from pocketvision.profile.counting import count_macs, count_params
from pocketvision.profile.measure import (
    activation_peak_bytes,
    file_sizes,
    machine_info,
    matmul_peak_gflops,
    peak_rss_mb,
    time_calls,
)
from pocketvision.registry import create_model, list_models, model_info

DEFAULT_RUNTIMES = ("eager", "compile", "onnxruntime", "litert", "executorch")


@dataclass
class RuntimeResult:
    """One runtime at one batch size. status is "ok", "skipped" or "failed" (see reason)."""

    runtime: str
    batch: int
    status: str
    median_ms: float | None = None
    p90_ms: float | None = None
    images_per_s: float | None = None
    gflops: float | None = None
    peak_fraction: float | None = None
    peak_rss_mb: float | None = None
    reason: str = ""


@dataclass
class ProfileResult:
    """Everything ``pocketvision profile --json`` prints."""

    model: str
    params: int
    macs: int
    input_size: list[int]
    threads: int
    peak_gflops: float
    activation_bytes: int
    size_bytes: dict[str, int]
    runtimes: list[RuntimeResult] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def resolve_model(
    target: str,
    input_size: int | None = None,
    in_chans: int | None = None,
    num_classes: int | None = None,
) -> tuple[str, nn.Module, tuple[int, int, int]]:
    """A registered name or a run directory -> (label, eval-mode model, (C, H, W))."""
    path = Path(target)
    if (path / "model.json").exists():
        from pocketvision.rundir import load_run

        run = load_run(path)
        c, h, w = run.preprocessing.input_size
        if input_size is not None:
            h = w = input_size
        return run.spec.name, run.model, (c, h, w)
    if target not in list_models():
        if path.exists():
            raise PocketvisionError(f"{target}: not a run directory (no model.json)")
        model_info(target)  # raises with the closest names
    info = model_info(target)
    c = in_chans or info.input_size[0]
    size = input_size or info.input_size[1]
    model = create_model(target, num_classes=num_classes or info.num_classes, in_chans=c)
    return target, model.eval(), (c, size, size)


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def profile(
    target: str,
    *,
    input_size: int | None = None,
    in_chans: int | None = None,
    num_classes: int | None = None,
    batches: Sequence[int] = (1, 32),
    threads: int | None = None,
    runtime_names: Sequence[str] = DEFAULT_RUNTIMES,
    runs: int = 30,
    log: Callable[[str], None] | None = None,
) -> ProfileResult:
    """Profile a registered model or a run directory; see the module docstring.

    Raises:
        PocketvisionError: Unknown runtime (the message lists the known ones) or model.
    """
    unknown = [r for r in runtime_names if r not in runtimes.RUNTIMES]
    if unknown:
        raise PocketvisionError(
            f"unknown runtime {unknown[0]!r}; known: {', '.join(runtimes.RUNTIMES)}"
        )
    if runs < 1 or any(b < 1 for b in batches):
        raise PocketvisionError("--batch sizes and the number of runs must be >= 1")
    threads = threads or torch.get_num_threads()
    name, model, size = resolve_model(target, input_size, in_chans, num_classes)
    macs = count_macs(model, size)
    with _threads(threads):
        peak = matmul_peak_gflops(threads)
        result = ProfileResult(
            model=name,
            params=count_params(model),
            macs=macs,
            input_size=list(size),
            threads=threads,
            peak_gflops=round(peak, 2),
            activation_bytes=activation_peak_bytes(model, torch.randn(1, *size)),
            size_bytes=file_sizes(model),
            machine=machine_info(),
        )
        with tempfile.TemporaryDirectory() as tmp:
            for rt in runtime_names:
                for batch in batches:
                    if log:
                        log(f"{name}: {rt} batch {batch}")
                    result.runtimes.append(
                        _measure(rt, model, size, batch, threads, runs, macs, peak, Path(tmp))
                    )
    return result


def _measure(
    runtime: str,
    model: nn.Module,
    size: tuple[int, int, int],
    batch: int,
    threads: int,
    runs: int,
    macs: int,
    peak: float,
    tmp: Path,
) -> RuntimeResult:
    spec = runtimes.RUNTIMES[runtime]
    missing = spec.missing()
    if missing:
        return RuntimeResult(runtime, batch, "skipped", reason=missing)
    x = torch.randn(batch, *size)
    try:
        call = spec.prepare(model, x, tmp / f"{runtime}-b{batch}", threads)
        timing = time_calls(call, runs=runs)
    except Exception as err:  # a runtime failing on one model must not stop the others
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return RuntimeResult(
            runtime, batch, "failed", reason=f"{type(err).__name__}: {first}"[:300]
        )
    gflops = 2 * macs * batch / (timing.median_ms / 1e3) / 1e9
    return RuntimeResult(
        runtime,
        batch,
        "ok",
        median_ms=round(timing.median_ms, 4),
        p90_ms=round(timing.p90_ms, 4),
        images_per_s=round(batch / (timing.median_ms / 1e3), 2),
        gflops=round(gflops, 3),
        peak_fraction=round(gflops / peak, 4),
        peak_rss_mb=round(peak_rss_mb(), 1),
    )
