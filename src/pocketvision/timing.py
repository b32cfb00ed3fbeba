"""Timing a call: median and spread over repeated runs. Used by export's checks (latency of
each exported file) and by profile (latency across runtimes), so it lives below both.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Latency statistics of one call, in milliseconds."""

    median_ms: float
    p90_ms: float
    min_ms: float
    runs: int


def time_calls(
    fn: Callable[[], object],
    runs: int = 30,
    warmup: int = 5,
    budget_s: float | None = None,
    min_runs: int = 5,
) -> Timing:
    """Median and p90 over ``runs`` timed calls after ``warmup`` untimed ones.

    With ``budget_s``, warm-up stops after the first call once a quarter of the budget is
    spent, and timing stops after ``min_runs`` calls once it is spent (``Timing.runs`` says
    how many): ``pocketvision compare`` uses it so that a 1 s VGG call does not take 35 s per
    runtime.
    """
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
        if budget_s is not None and time.perf_counter() - start > budget_s / 4:
            break
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        spent = time.perf_counter() - start
        if budget_s is not None and len(times) >= min_runs and spent > budget_s:
            break
    times.sort()
    p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
    return Timing(statistics.median(times), p90, times[0], len(times))


def median_latency_ms(fn: Callable[[], object], runs: int, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds after a few warm-up calls."""
    return time_calls(fn, runs=max(runs, 1), warmup=warmup).median_ms
