"""Budgets checked before any training: parameters, file size, latency on the deploy runtime.

The checks run cheapest first and stop at the first one broken, so a model over
``--max-params`` costs the milliseconds of building it, and only a model inside the params and
size budgets is converted and timed. Latency is the median of batch-1 calls of the file the
chosen runtime runs (``pocketvision.profile.runtimes``: the same conversion ``pocketvision
export`` writes), after checking its output against eager PyTorch.

Converting is the costly step (8-12 s for LiteRT on this project's 2-core machine), so two
cheaper answers come first: a model whose multiply-accumulates alone need more than the budget
at twice this machine's measured matmul peak cannot meet it in any runtime (a roofline floor,
milliseconds to compute), and a model a trial of the same study already timed on this host is
not timed again (``runner``).
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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
    """A model's measured cost; ``broke`` names the budget it breaks ("" when it fits)."""

    params: int
    size_bytes: int
    latency_ms: float | None = None
    broke: str = ""


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


def latency_ms(model: nn.Module, size: tuple[int, int, int], budget: Budget) -> float:
    """Median batch-1 latency of ``model`` in ``budget.runtime`` on this machine."""
    calibrate_batchnorm(model, size)
    x = torch.randn(1, *size)
    with tempfile.TemporaryDirectory() as tmp, captured():
        call = RUNTIMES[budget.runtime].prepare(model, x, Path(tmp), budget.threads)
        check_output(model, x, call())
        timing = time_calls(call, runs=TIMED_RUNS, budget_s=TIMING_BUDGET_S)
    return round(timing.median_ms, 4)


@functools.cache
def _peak_gflops(threads: int) -> float:
    from pocketvision.profile.measure import matmul_peak_gflops

    return matmul_peak_gflops(threads)


def latency_floor_ms(model: nn.Module, size: tuple[int, int, int], threads: int) -> float:
    """A batch-1 latency no runtime beats: the model's MACs at ``FLOOR_PEAK_MARGIN`` x peak."""
    flops = 2 * count_macs(model, size)
    return flops / (FLOOR_PEAK_MARGIN * _peak_gflops(threads) * 1e9) * 1e3


# latencies this process measured, by what decides them: a search's reachability check and its
# trials, and repeated trials, time each model once
_TIMED: dict[tuple[Any, ...], float] = {}


def timing_key(choice: TrialChoice, num_classes: int, in_chans: int, budget: Budget) -> tuple:
    """What a latency measurement depends on: the model, its input, the runtime and threads."""
    return (choice.model, choice.width_mult, choice.img_size, num_classes, in_chans,
            budget.runtime, budget.threads)  # fmt: skip


def _kb(n: float) -> str:
    return f"{n / 1000:,.1f} KB"


def measure(
    model: nn.Module,
    size: tuple[int, int, int],
    budget: Budget,
    timed: bool = True,
    known_latency_ms: float | None = None,
    key: tuple | None = None,
) -> Cost:
    """Params, then size, then latency (when ``timed``), stopping at the first budget broken.

    Latency is ``known_latency_ms`` when given (an earlier measurement of the same model on this
    machine) or what this process measured for ``key`` (:func:`timing_key`); otherwise, under a
    latency budget, the roofline floor is checked before the model is converted and timed.
    """
    params = count_params(model)
    cost = Cost(params, params * BYTES_PER_PARAM[budget.precision])
    if budget.max_params is not None and params > budget.max_params:
        cost.broke = f"params {params:,} > {budget.max_params:,}"
        return cost
    if budget.max_size_kb is not None and cost.size_bytes > budget.max_size_kb * 1000:
        cost.broke = (
            f"size {_kb(cost.size_bytes)} > {budget.max_size_kb:,} KB at {budget.precision}"
        )
        return cost
    if not timed:
        return cost
    if known_latency_ms is None and key is not None:
        known_latency_ms = _TIMED.get(key)
    if known_latency_ms is None and budget.max_latency_ms is not None:
        floor = latency_floor_ms(model, size, budget.threads)
        if floor > budget.max_latency_ms:
            cost.broke = (
                f"latency at least {floor:.3f} ms > {budget.max_latency_ms} ms on any runtime "
                f"(its MACs at {FLOOR_PEAK_MARGIN:g}x this machine's matmul peak)"
            )
            return cost
    if known_latency_ms is not None:
        cost.latency_ms = known_latency_ms
    else:
        cost.latency_ms = latency_ms(model.eval(), size, budget)
        if key is not None:
            _TIMED[key] = cost.latency_ms
    if budget.max_latency_ms is not None and cost.latency_ms > budget.max_latency_ms:
        cost.broke = (
            f"latency {cost.latency_ms:.3f} ms > {budget.max_latency_ms} ms on {budget.runtime}"
        )
    return cost


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
    timed = budget.max_latency_ms is not None
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
    """The space with each model's widths cut to those inside the params and size budgets.

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
