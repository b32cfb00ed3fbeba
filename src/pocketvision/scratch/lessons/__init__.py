"""Runnable lessons, from a line fit to a convolutional network: ``pocketvision lesson NAME``.

Each lesson prints what it does step by step (epoch by epoch when it trains), writes one PNG
figure and returns the numbers it measured. Keyword arguments shrink a lesson for tests; the
defaults are the real lesson.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pocketvision.scratch.lessons.classic import linear_regression, mlp, perceptron
from pocketvision.scratch.lessons.result import LessonResult, Log
from pocketvision.scratch.lessons.vision import convolution, lenet, pooling

LESSONS: dict[str, Callable[..., LessonResult]] = {
    "linear-regression": linear_regression,
    "perceptron": perceptron,
    "mlp": mlp,
    "convolution": convolution,
    "pooling": pooling,
    "lenet": lenet,
}


def run_lesson(name: str, out: str | Path, log: Log = print, **kwargs: Any) -> LessonResult:
    """Run the lesson ``name``, writing its figure to ``out``.

    Raises:
        ValueError: for an unknown lesson name.
    """
    if name not in LESSONS:
        raise ValueError(f"unknown lesson {name!r}; choose one of {', '.join(LESSONS)}")
    return LESSONS[name](Path(out), log=log, **kwargs)


__all__ = ["LESSONS", "LessonResult", "run_lesson"]
