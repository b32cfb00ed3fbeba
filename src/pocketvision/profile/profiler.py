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

from pocketvision import create_model, list_models, model_info
from pocketvision.console import captured
from pocketvision.environment import environment
from pocketvision.errors import PocketvisionError
from pocketvision.export.agreement import OutputMismatchError, agreement
from pocketvision.layers.reparameterize import deploy_form
from pocketvision.profile import runtimes
from pocketvision.profile.counting import count_macs, count_params
from pocketvision.profile.measure import (
    activation_peak_bytes,
    cuda_matmul_peak_gflops,
    file_sizes,
    matmul_peak_gflops,
    peak_rss_mb,
)
from pocketvision.rundir import is_run_dir
from pocketvision.timing import time_calls

# Every runtime: the GPU ones report "skipped" with the reason on a machine without CUDA.
DEFAULT_RUNTIMES = tuple(runtimes.RUNTIMES)


@dataclass
class RuntimeResult:
    """One runtime at one batch size. status is "ok", "skipped" or "failed" (see reason)."""

    runtime: str
    batch: int
    status: str
    median_ms: float | None = None
    p90_ms: float | None = None
    min_ms: float | None = None
    images_per_s: float | None = None
    gflops: float | None = None
    peak_fraction: float | None = None
    peak_rss_mb: float | None = None
    max_abs_diff: float | None = None
    runs: int | None = None
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
    # the GPU's fp32 matmul peak, measured only when a *_cuda runtime is asked for; the
    # peak_fraction of those runtimes is against it, not against the CPU's peak_gflops
    gpu_peak_gflops: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def resolve_model(
    target: str,
    input_size: int | None = None,
    in_chans: int | None = None,
    num_classes: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> tuple[str, nn.Module, tuple[int, int, int]]:
    """A registered name or a run directory -> (label, deployed model, (C, H, W)).

    ``model_kwargs`` go to create_model for a registered name, e.g. ``{"small_input": True}``.
    The model is in eval mode and in its inference form (:func:`deploy_form`: MobileOne's
    branches folded), as every runtime, eager PyTorch included, would run it on a device.
    """
    path = Path(target)
    if is_run_dir(path):
        from pocketvision.rundir import load_run

        run = load_run(path)
        c, h, w = run.preprocessing.input_size
        if input_size is not None:
            h = w = input_size
        return run.spec.name, deploy_form(run.model), (c, h, w)
    if target not in list_models():
        if path.exists():
            raise PocketvisionError(f"{target}: not a run directory (no model.json)")
        model_info(target)  # raises with the closest names
    info = model_info(target)
    c = in_chans or info.input_size[0]
    size = input_size or info.input_size[1]
    model = create_model(
        target, num_classes=num_classes or info.num_classes, in_chans=c, **(model_kwargs or {})
    )
    calibrate_batchnorm(model, (c, size, size))
    return target, deploy_form(model.eval()), (c, size, size)


def calibrate_batchnorm(model: nn.Module, size: tuple[int, int, int], batch: int = 2) -> None:
    """Set BatchNorm running statistics from random inputs, so activations are O(1).

    A freshly initialised network in eval mode (running mean 0, variance 1) shrinks its
    activations layer after layer: MobileNetV2's last blocks produce ~1e-40, i.e. subnormal
    floats, which x86 handles ~100x slower in PyTorch eager while ONNX Runtime and XNNPACK
    flush them to zero. Timing that would measure the artefact, not the model; a trained
    network's activations are normalised, and so are these after calibration.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
        m.train()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model(torch.randn(batch, *size, generator=generator))
    model.eval()


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
    model_kwargs: dict[str, Any] | None = None,
    budget_s: float | None = None,
) -> ProfileResult:
    """Profile a registered model or a run directory; see the module docstring.

    Each runtime converts the model once per input shape (batch sizes share an ONNX or LiteRT
    file; ExecuTorch programs have static shapes and convert per batch); conversion is not
    timed. Before timing, each runtime's output on the timed batch is checked against eager
    PyTorch (``max_abs_diff``); a runtime computing something else is reported as failed.
    ``budget_s`` caps the timing of one runtime at one batch (at least 5 runs; see
    :func:`~pocketvision.profile.measure.time_calls`); each result records its ``runs``.

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
    name, model, size = resolve_model(target, input_size, in_chans, num_classes, model_kwargs)
    with _threads(threads):
        result = _static_costs(name, model, size, threads)
        gpu = {rt for rt in runtime_names if runtimes.RUNTIMES[rt].gpu}
        if gpu:
            gpu_peak = cuda_matmul_peak_gflops()
            result.gpu_peak_gflops = round(gpu_peak, 2) if gpu_peak else None
        with tempfile.TemporaryDirectory() as tmp:
            for rt in runtime_names:
                # a GPU runtime's peak_fraction is against the GPU's peak when it has one
                peak = result.peak_gflops
                if rt in gpu and result.gpu_peak_gflops:
                    peak = result.gpu_peak_gflops
                job = _Job(model, size, threads, runs, result.macs, peak, Path(tmp), budget_s)
                for batch in batches:
                    if log:
                        log(f"{name}: {rt} batch {batch}")
                    result.runtimes.append(_measure(rt, batch, job))
    return result


def _static_costs(
    name: str, model: nn.Module, size: tuple[int, int, int], threads: int
) -> ProfileResult:
    """What does not depend on a runtime: params, MACs, activations, file sizes, the peak."""
    return ProfileResult(
        model=name,
        params=count_params(model),
        macs=count_macs(model, size),
        input_size=list(size),
        threads=threads,
        peak_gflops=round(matmul_peak_gflops(threads), 2),
        activation_bytes=activation_peak_bytes(model, torch.randn(1, *size)),
        size_bytes=file_sizes(model),
        machine=environment(),
    )


@dataclass(frozen=True)
class _Job:
    """What every runtime and batch of one profile share."""

    model: nn.Module
    size: tuple[int, int, int]
    threads: int
    runs: int
    macs: int
    peak: float  # GFLOP/s the runtime's peak_fraction is against
    tmp: Path
    budget_s: float | None = None


def _measure(runtime: str, batch: int, job: _Job) -> RuntimeResult:
    model, size, threads, runs, macs = job.model, job.size, job.threads, job.runs, job.macs
    peak, tmp, budget_s = job.peak, job.tmp, job.budget_s
    spec = runtimes.RUNTIMES[runtime]
    missing = spec.missing()
    if missing:
        return RuntimeResult(runtime, batch, "skipped", reason=missing)
    if spec.same_at_batch_1 and batch == 1:
        return RuntimeResult(
            runtime, batch, "skipped", reason=f"at batch 1 it is {spec.same_at_batch_1}"
        )
    x = torch.randn(batch, *size)
    try:
        # one folder per runtime: a file converted for one batch is reused for the next, and a
        # runtime that is another one at batch 1 (litert_loop) runs that one's file
        with captured():  # converters' and runtimes' own warnings and logs (see console)
            call = spec.prepare(model, x, tmp / (spec.same_at_batch_1 or runtime), threads)
            diff = check_output(model, x, call())
            timing = time_calls(call, runs=runs, budget_s=budget_s)
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
        min_ms=round(timing.min_ms, 4),
        images_per_s=round(batch / (timing.median_ms / 1e3), 2),
        gflops=round(gflops, 3),
        peak_fraction=round(gflops / peak, 4),
        peak_rss_mb=round(peak_rss_mb(), 1),
        max_abs_diff=diff,
        runs=timing.runs,
    )


def check_output(model: nn.Module, x: torch.Tensor, out: object, rtol: float = 1e-3) -> float:
    """Max |runtime output - eager output| on ``x``; raises when it exceeds ``rtol`` of the scale
    (the largest eager logit; see :meth:`~pocketvision.export.agreement.Agreement.within`).

    Raises:
        OutputMismatchError: The outputs differ in shape or by more than the tolerance.
    """
    with torch.inference_mode():
        reference = model(x).float().numpy()
    try:
        found = agreement(reference, out)
    except OutputMismatchError:
        got = runtimes.output_array(out)
        raise OutputMismatchError(
            f"output shape {got.shape}, eager gives {reference.shape}"
        ) from None
    if not found.within(rtol):
        raise OutputMismatchError(
            f"output differs from eager by {found.max_abs_diff:.3g} "
            f"(largest eager logit {found.scale:.3g})"
        )
    return found.max_abs_diff


__all__ = ["OutputMismatchError", "check_output", "profile"]
