"""The one agreement check between a model and a converted file: the export report's
numbers, the profiler's "does this runtime compute the same thing" and the web cache's
check of its ONNX file all come from :func:`agreement`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class OutputMismatchError(RuntimeError):
    """A converted file computes something other than the PyTorch model."""


@dataclass(frozen=True)
class Agreement:
    """How closely a file's outputs follow PyTorch's on the same inputs.

    Attributes:
        max_abs_diff: Largest |output - reference| over all inputs and classes.
        top1_agreement: Share of inputs whose top-1 class equals the reference's, in [0, 1].
        accuracy: Top-1 accuracy of the outputs against ``labels``, or None without labels.
        scale: Largest |reference| value (what a relative tolerance is relative to).
    """

    max_abs_diff: float
    top1_agreement: float
    accuracy: float | None
    scale: float

    def within(self, rtol: float, atol: float = 1e-30) -> bool:
        """``max_abs_diff <= rtol * scale + atol`` (and finite).

        Relative to the largest reference value because freshly initialised models can have
        logits near 1e-8 (zero-initialised residual branches), where any absolute tolerance
        would pass anything.
        """
        return bool(np.isfinite(self.max_abs_diff)) and (
            self.max_abs_diff <= rtol * self.scale + atol
        )


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def agreement(
    reference: np.ndarray,
    outputs: object,
    *,
    labels: np.ndarray | None = None,
    probabilities: bool = False,
) -> Agreement:
    """Compare a file's ``outputs`` with PyTorch's ``reference`` (N, K) on the same inputs.

    Args:
        reference: PyTorch's logits.
        outputs: The file's outputs, any shape with N * K values (tensors are converted).
        labels: True classes (N,), to report the outputs' accuracy.
        probabilities: ``outputs`` are softmax probabilities (Core ML's classifier); compare
            with the softmax of ``reference``.

    Raises:
        OutputMismatchError: ``outputs`` has another number of values (e.g. a graph with its
            batch baked in).
    """
    ref = np.asarray(reference, dtype=np.float32)
    if ref.ndim == 1:
        ref = ref[None]
    if probabilities:
        ref = _softmax(ref.reshape(len(ref), -1))
    got = as_array(outputs)
    if got.size != ref.size:
        raise OutputMismatchError(f"output shape {got.shape}, expected {ref.shape}")
    got = got.reshape(ref.shape)
    flat_ref, flat_got = ref.reshape(len(ref), -1), got.reshape(len(got), -1)
    top1 = flat_got.argmax(axis=1)
    return Agreement(
        max_abs_diff=float(np.abs(got - ref).max()) if ref.size else 0.0,
        top1_agreement=float((top1 == flat_ref.argmax(axis=1)).mean()),
        accuracy=None if labels is None else float((top1 == np.asarray(labels)).mean()),
        scale=float(np.abs(ref).max()) if ref.size else 0.0,
    )


def as_array(out: object) -> np.ndarray:
    """A runtime's output (tensor, array, or a list of them: the first) as float32."""
    if isinstance(out, list | tuple):
        return as_array(out[0])
    detach = getattr(out, "detach", None)
    if detach is not None:  # a torch tensor, on any device
        return np.asarray(detach().float().cpu().numpy(), dtype=np.float32)
    return np.asarray(out, dtype=np.float32)
