"""Budgets checked before any training: parameters, file size, latency on the deploy runtime.

The checks run cheapest first and stop at the first one broken. Size and latency are those of
the real artefact: the file ``pocketvision export`` writes for the chosen runtime at the chosen
precision (``pocketvision.export``'s model-level core: ``to_tflite`` / ``to_onnx`` /
``to_pte``; int8 calibrated on random images, which set ranges but not sizes), its bytes
counted and its batch-1 median latency timed in that runtime on this machine, after checking
its output against eager PyTorch.

Converting is the costly step (5-15 s on this project's 2-core machine), so cheaper answers
come first, each a bound the file cannot beat:

- params over ``--max-params``: milliseconds of building the model;
- the weights alone at the precision's bytes per weight over ``--max-size-kb`` (the file holds
  them plus the graph and, at int8, per-channel scales: 45 % more for ShuffleNet v1 0.5);
- the model's multiply-accumulates at twice this machine's measured matmul peak over
  ``--max-latency-ms`` (a roofline floor no runtime beats);
- a narrower width of the same model whose file already broke the size budget (files grow
  with the width);
- a model converted before, in this process or by a trial of the same study (``runner``):
  its file size anywhere, its latency on the same host.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketvision.console import captured
from pocketvision.errors import PocketvisionError
from pocketvision.profile.counting import count_macs, count_params
from pocketvision.profile.profiler import calibrate_batchnorm, check_output
from pocketvision.profile.runtimes import RUNTIMES
from pocketvision.search.space import (
    BYTES_PER_PARAM,
    SEARCH_RUNTIMES,
    WIDTH_STEP,
    Candidate,
    SearchSpace,
    TrialChoice,
)
from pocketvision.timing import time_calls

TIMED_RUNS = 30
TIMING_BUDGET_S = 2.0
# the floor assumes a runtime at most this many times the measured matmul peak: no runtime
# reaches 1x at batch 1 (47-94 % for the zoo, benchmarks/results/latency_zoo_1t.json), and 2x
# keeps a peak measured while another process held the core from refusing a model that fits
FLOOR_PEAK_MARGIN = 2.0


@dataclass(frozen=True)
class Budget:
    """The limits a shipped model must meet, and where latency is measured."""

    max_params: int | None = None
    max_size_kb: float | None = None
    max_latency_ms: float | None = None
    runtime: str = "onnxruntime"
    precision: str = "fp32"
    threads: int = 1

    def validate(self) -> None:
        """Raise a one-line error for an unknown runtime or precision, or a limit <= 0."""
        if self.runtime not in SEARCH_RUNTIMES:
            raise PocketvisionError(
                f"--runtime {self.runtime!r}: choose from {', '.join(SEARCH_RUNTIMES)}"
            )
        missing = RUNTIMES[self.runtime].missing()
        if missing:
            raise PocketvisionError(f"--runtime {self.runtime}: {missing}")
        if self.precision not in BYTES_PER_PARAM:
            raise PocketvisionError(
                f"--precision {self.precision!r}: choose from {', '.join(BYTES_PER_PARAM)}"
            )
        for flag, value in (
            ("--max-params", self.max_params),
            ("--max-size-kb", self.max_size_kb),
            ("--max-latency-ms", self.max_latency_ms),
        ):
            if value is not None and value <= 0:
                raise PocketvisionError(f"{flag} must be > 0, got {value}")


@dataclass
class Cost:
    """A model's measured cost; ``broke`` names the budget it breaks ("" when it fits).

    ``size_bytes`` is the deploy file's size once converted (``converted``), before that the
    weights' bytes at the precision, a lower bound of it.
    """

    params: int
    size_bytes: int
    latency_ms: float | None = None
    broke: str = ""
    converted: bool = False


@dataclass(frozen=True)
class Known:
    """What an earlier conversion of the same model measured (None: not measured)."""

    size_bytes: int | None = None
    latency_ms: float | None = None


def build(choice: TrialChoice, num_classes: int, in_chans: int) -> nn.Module:
    """The model a trial trains, built as ``pocketvision train`` builds it."""
    from pocketvision import create_model

    return create_model(
        choice.model,
        num_classes=num_classes,
        in_chans=in_chans,
        small_input=choice.img_size <= 64,  # TrainConfig's rule (train.config.resolve)
        width_mult=choice.width_mult,
    )


#: Random images that set an int8 file's activation ranges (ranges move latency and size
#: by nothing measurable; accuracy is the trial's, trained and scored in PyTorch)
CALIBRATION_IMAGES = 8
FILE_NAMES = {"litert": "model.tflite", "onnxruntime": "model.onnx", "executorch": "model.pte"}


def deploy_file(model: nn.Module, x: torch.Tensor, budget: Budget, folder: Path) -> Path:
    """Write the file ``budget.runtime`` runs, at ``budget.precision``, for input ``x``."""
    from pocketvision.export.executorch_export import to_pte
    from pocketvision.export.onnx_export import to_onnx
    from pocketvision.export.tflite_export import to_tflite

    path = folder / FILE_NAMES[budget.runtime]
    generator = torch.Generator().manual_seed(0)
    calibration = None
    if budget.precision == "int8":
        calibration = torch.randn(CALIBRATION_IMAGES, *x.shape[1:], generator=generator).numpy()
    converters: dict[str, Callable[..., Path]] = {
        "litert": to_tflite, "onnxruntime": to_onnx, "executorch": to_pte
    }  # fmt: skip
    convert = converters[budget.runtime]
    return convert(model, x, path, precision=budget.precision, calibration=calibration)


def file_call(path: Path, x: torch.Tensor, budget: Budget) -> Callable[[], np.ndarray]:
    """One batch-1 inference of ``x`` in the file's runtime, returning float32 logits."""
    if budget.runtime == "litert":
        from pocketvision.export.tflite_export import runner

        run, image = runner(path, threads=budget.threads), x.numpy()
        return lambda: run(image)
    if budget.runtime == "onnxruntime":
        from pocketvision.export.onnx_export import INPUT_NAME, OUTPUT_NAME, session

        sess, feed = session(path, threads=budget.threads), {INPUT_NAME: x.numpy()}
        return lambda: sess.run([OUTPUT_NAME], feed)[0]
    from executorch.extension.pybindings import portable_lib

    from pocketvision.export.executorch_export import load_method

    portable_lib._unsafe_reset_threadpool(budget.threads)
    method, inputs = load_method(path), [x.contiguous()]
    return lambda: method.execute(inputs)[0].numpy()


def convert_and_time(
    model: nn.Module, size: tuple[int, int, int], budget: Budget
) -> tuple[int, float | None]:
    """(file bytes, batch-1 median ms) of the deploy file; the latency is None when the file
    already breaks the size budget (it is not worth timing)."""
    calibrate_batchnorm(model, size)
    x = torch.randn(1, *size, generator=torch.Generator().manual_seed(1))
    with tempfile.TemporaryDirectory() as tmp, captured():
        path = deploy_file(model.eval(), x, budget, Path(tmp))
        size_bytes = path.stat().st_size
        if budget.max_size_kb is not None and size_bytes > budget.max_size_kb * 1000:
            return size_bytes, None
        call = file_call(path, x, budget)
        out = call()
        if budget.precision == "fp32":
            check_output(model, x, out)
        elif out.shape != (1, _classes(model, x)) or not np.isfinite(out).all():
            raise RuntimeError(f"{path.name}: output {out.shape}, not finite logits")
        timing = time_calls(call, runs=TIMED_RUNS, budget_s=TIMING_BUDGET_S)
    return size_bytes, round(timing.median_ms, 4)


def _classes(model: nn.Module, x: torch.Tensor) -> int:
    with torch.inference_mode():
        return int(model(x).shape[1])


@functools.cache
def _peak_gflops(threads: int) -> float:
    from pocketvision.profile.measure import matmul_peak_gflops

    return matmul_peak_gflops(threads)


def latency_floor_ms(model: nn.Module, size: tuple[int, int, int], threads: int) -> float:
    """A batch-1 latency no runtime beats: the model's MACs at ``FLOOR_PEAK_MARGIN`` x peak."""
    flops = 2 * count_macs(model, size)
    return flops / (FLOOR_PEAK_MARGIN * _peak_gflops(threads) * 1e9) * 1e3


# what this process measured, by what decides it (see timing_key): a search's reachability
# check and its trials, and repeated trials, convert each model once
_MEASURED: dict[tuple[Any, ...], Known] = {}


def timing_key(choice: TrialChoice, num_classes: int, in_chans: int, budget: Budget) -> tuple:
    """What a file's size and latency depend on: the model, its input, the runtime, the
    precision and the threads."""
    return (choice.model, choice.width_mult, choice.img_size, num_classes, in_chans,
            budget.runtime, budget.precision, budget.threads)  # fmt: skip


def _kb(n: float) -> str:
    return f"{n / 1000:,.1f} KB"


def _file_name(budget: Budget) -> str:
    return f"the {budget.precision} {FILE_NAMES[budget.runtime].split('.')[1]} file"


def _bounds(model: nn.Module, size: tuple[int, int, int], budget: Budget, cost: Cost) -> str:
    """The first budget a bound shows broken without converting (see the module docstring)."""
    if budget.max_params is not None and cost.params > budget.max_params:
        return f"params {cost.params:,} > {budget.max_params:,}"
    if budget.max_size_kb is not None and cost.size_bytes > budget.max_size_kb * 1000:
        return (
            f"size at least {_kb(cost.size_bytes)} (its weights at {budget.precision}) > "
            f"{budget.max_size_kb:,} KB"
        )
    return ""


def measure(
    model: nn.Module,
    size: tuple[int, int, int],
    budget: Budget,
    timed: bool = True,
    known: Known | None = None,
    key: tuple | None = None,
) -> Cost:
    """Params, then size, then latency, stopping at the first budget broken.

    Without ``timed`` only the bounds that need no conversion are checked (``size_bytes`` is
    the weights' lower bound). Otherwise the deploy file is converted, counted and timed,
    unless ``known`` (an earlier trial's numbers) or this process's measurements for ``key``
    (:func:`timing_key`) say enough, or a bound already breaks the budget.
    """
    params = count_params(model)
    cost = Cost(params, params * BYTES_PER_PARAM[budget.precision])
    cost.broke = _bounds(model, size, budget, cost)
    if cost.broke or not timed:
        return cost
    known = _merge(known, _MEASURED.get(key) if key is not None else None)
    if known.size_bytes is None and key is not None and (wider := _narrower_over(key, budget)):
        cost.broke = wider
        return cost
    if known.latency_ms is None and budget.max_latency_ms is not None:
        floor = latency_floor_ms(model, size, budget.threads)
        if floor > budget.max_latency_ms:
            cost.broke = (
                f"latency at least {floor:.3f} ms > {budget.max_latency_ms} ms on any runtime "
                f"(its MACs at {FLOOR_PEAK_MARGIN:g}x this machine's matmul peak)"
            )
            return cost
    if known.size_bytes is not None and (
        known.latency_ms is not None or _over_size(known.size_bytes, budget)
    ):
        size_bytes, latency = known.size_bytes, known.latency_ms
    else:
        size_bytes, latency = convert_and_time(model, size, budget)
        if key is not None:
            _MEASURED[key] = Known(size_bytes, latency)
    cost.size_bytes, cost.latency_ms, cost.converted = size_bytes, latency, True
    if _over_size(size_bytes, budget):
        cost.broke = f"size {_kb(size_bytes)} > {budget.max_size_kb:,} KB ({_file_name(budget)})"
    elif latency is not None and latency > (budget.max_latency_ms or float("inf")):
        cost.broke = f"latency {latency:.3f} ms > {budget.max_latency_ms} ms on {budget.runtime}"
    return cost


def _narrower_over(key: tuple, budget: Budget) -> str:
    """Why a model is over the size budget without converting it: a narrower width of it,
    same input, runtime and precision, already made a file over the budget ("" if none)."""
    width = key[1]
    if width is None:
        return ""
    for other, found in _MEASURED.items():
        narrower = other[0] == key[0] and other[2:] == key[2:] and (other[1] or width) < width
        if narrower and found.size_bytes is not None and _over_size(found.size_bytes, budget):
            return (
                f"size over {budget.max_size_kb:,} KB: width {other[1]} already makes "
                f"{_kb(found.size_bytes)} ({_file_name(budget)})"
            )
    return ""


def _over_size(size_bytes: int, budget: Budget) -> bool:
    return budget.max_size_kb is not None and size_bytes > budget.max_size_kb * 1000


def _merge(first: Known | None, second: Known | None) -> Known:
    """Each number from whichever of two measurements has it."""
    a, b = first or Known(), second or Known()
    return Known(
        a.size_bytes if a.size_bytes is not None else b.size_bytes,
        a.latency_ms if a.latency_ms is not None else b.latency_ms,
    )


def _smallest(
    space: SearchSpace, num_classes: int, in_chans: int
) -> tuple[Any, Candidate, TrialChoice]:
    """(model, candidate, choice) of the space's smallest model: each at its narrowest width."""
    best: tuple[Any, Candidate, TrialChoice, int] | None = None
    for c in space.candidates:
        choice = TrialChoice(
            c.name, c.width[0] if c.width else None, min(space.img_sizes), 0, "", 0
        )
        model = build(choice, num_classes, in_chans)
        params = count_params(model)
        if best is None or params < best[3]:
            best = (model, c, choice, params)
    assert best is not None
    return best[:3]


def check_reachable(space: SearchSpace, budget: Budget, num_classes: int, in_chans: int) -> None:
    """Refuse a budget that even the space's smallest model breaks, saying what it measures.

    Raises:
        PocketvisionError: The smallest model breaks a budget (the message gives its numbers).
    """
    model, smallest, choice = _smallest(space, num_classes, in_chans)
    width = f" at width {smallest.width[0]}" if smallest.width else ""
    size = min(space.img_sizes)
    timed = budget.max_latency_ms is not None or budget.max_size_kb is not None
    key = timing_key(choice, num_classes, in_chans, budget)
    cost = measure(model, (in_chans, size, size), budget, timed=timed, key=key)
    if cost.broke:
        raise PocketvisionError(
            f"no model in --models can meet the budget: the smallest, {smallest.name}{width} at "
            f"{size}px, has {cost.broke}"
        )


def fit_widths(
    space: SearchSpace, budget: Budget, num_classes: int, in_chans: int
) -> tuple[SearchSpace, list[str]]:
    """The space with each model's widths cut to those inside the params budget and the size
    budget's bound (the weights alone; a file near the limit may still break it, which its
    trial then measures).

    Parameters grow with the width multiplier, so the widest width that fits is found by
    bisection on the sampled grid (a few builds of a second or less each); a model that breaks
    the budget even at its narrowest width leaves the space. Without this, a tight budget
    (250 KB at int8) makes most sampled trials infeasible: in a 12-trial search on
    Fashion-MNIST all 12 were (benchmarks/results/search_overhead.json).

    Returns:
        (the narrowed space, one line per model that changed, for the terminal).
    """
    if budget.max_params is None and budget.max_size_kb is None:
        return space, []
    size = min(space.img_sizes)

    def fits(name: str, width: float | None) -> bool:
        model = build(TrialChoice(name, width, size, 0, "", 0), num_classes, in_chans)
        return not measure(model, (in_chans, size, size), budget, timed=False).broke

    kept: list[Candidate] = []
    notes: list[str] = []
    for c in space.candidates:
        if c.width is None or not fits(c.name, c.width[0]):
            if c.width is None and fits(c.name, None):
                kept.append(c)
            else:
                notes.append(f"{c.name}: over the budget even at its narrowest; left out")
            continue
        lo, hi = c.width
        if fits(c.name, hi):
            kept.append(c)
            continue
        good, bad = 0, max(1, round((hi - lo) / WIDTH_STEP))  # grid indices: fits, breaks
        while bad - good > 1:
            mid = (good + bad) // 2
            good, bad = (mid, bad) if fits(c.name, round(lo + mid * WIDTH_STEP, 3)) else (good, mid)
        top = round(lo + good * WIDTH_STEP, 3)
        kept.append(Candidate(c.name, (lo, top)))
        fitting = f"only width {lo} fits" if top == lo else f"widths {lo}-{top} fit"
        notes.append(f"{c.name}: {fitting} the budget (of {lo}-{hi})")
    return replace(space, candidates=tuple(kept)), notes
