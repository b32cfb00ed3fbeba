"""Evaluation and prediction: metrics (NumPy), reports and plots, top-k prediction on files.

``evaluate(run_dir, data=None, split="val")`` measures a trained run and writes metrics.json,
confusion_matrix.png and mistakes.png into it; ``predict(run_dir, paths, topk=3)`` labels
image files. The metric functions live in :mod:`pocketvision.evaluate.metrics`.

Exports resolve lazily, so ``pocketvision --help`` does not import torch or matplotlib.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pocketvision.evaluate.evaluation import evaluate, evaluate_images
    from pocketvision.evaluate.prediction import predict, predict_run

_EXPORTS = {
    "evaluate": "pocketvision.evaluate.evaluation",
    "evaluate_images": "pocketvision.evaluate.evaluation",
    "predict": "pocketvision.evaluate.prediction",
    "predict_run": "pocketvision.evaluate.prediction",
}

__all__ = ["evaluate", "evaluate_images", "predict", "predict_run"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
