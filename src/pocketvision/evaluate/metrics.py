"""Classification metrics in plain NumPy, with scikit-learn's definitions.

Every function takes integer labels ``y_true`` of shape (N,) in ``[0, K)`` and either integer
predictions (N,) or class probabilities (N, K). Tests hold each one to ``sklearn.metrics``
(the oracle) on random and edge-case inputs, and the calibration error to a hand-computed case.

Conventions, where a choice exists:

- Ties in scores rank the lower class index first, like ``argmax``; so top-1 accuracy from
  :func:`top_k_accuracy` always equals :func:`accuracy` of the argmax prediction.
- A 0/0 precision or recall (a class never predicted, or absent from ``y_true``) counts as 0,
  scikit-learn's ``zero_division=0``; macro averages run over all K classes, so such a class
  pulls the average down rather than silently vanishing from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

# Probabilities are clipped to [eps, 1 - eps] before the log, as scikit-learn does, so one
# confidently wrong prediction gives a large but finite loss.
_LOG_EPS = float(np.finfo(np.float64).eps)


def _labels(y: ArrayLike, num_classes: int | None = None) -> NDArray[np.int64]:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError("labels must be >= 0")
    if num_classes is not None and arr.size and arr.max() >= num_classes:
        raise ValueError(f"label {arr.max()} out of range for {num_classes} classes")
    return arr


def _probs(y_true: NDArray[np.int64], probs: ArrayLike) -> NDArray[np.float64]:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y_true.shape[0]:
        raise ValueError(f"probabilities must be (N={y_true.shape[0]}, K), got shape {p.shape}")
    _labels(y_true, p.shape[1])
    return p


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> NDArray[np.int64]:
    """Counts ``cm[t, p]`` of samples with true class ``t`` predicted as ``p``; shape (K, K)."""
    t = _labels(y_true, num_classes)
    p = _labels(y_pred, num_classes)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in length")
    # one bincount over flattened (t, p) pairs instead of a Python loop
    flat = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of exactly right predictions."""
    t, p = _labels(y_true), _labels(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in length")
    return float(np.mean(t == p)) if t.size else float("nan")


def top_k_accuracy(y_true: ArrayLike, probs: ArrayLike, k: int) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores."""
    t = _labels(y_true)
    p = _probs(t, probs)
    if not 1 <= k <= p.shape[1]:
        raise ValueError(f"k must be in [1, {p.shape[1]}], got {k}")
    # stable sort of the negated scores: equal scores keep index order, like argmax
    top = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return float(np.mean((top == t[:, None]).any(axis=1))) if t.size else float("nan")


def _safe_divide(num: NDArray[Any], den: NDArray[Any]) -> NDArray[np.float64]:
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def precision_recall_f1(
    cm: NDArray[np.int64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Per-class precision, recall, F1 and support from a confusion matrix.

    Returns:
        (precision, recall, f1, support), each of shape (K,); 0/0 counts as 0.
    """
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)  # column sums: how often each was predicted
    support = cm.sum(axis=1)  # row sums: how often each is the truth
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support.astype(np.float64))
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return precision, recall, f1, support.astype(np.int64)


def log_loss(y_true: ArrayLike, probs: ArrayLike) -> float:
    """Mean negative log probability of the true class (natural log), probabilities clipped."""
    t = _labels(y_true)
    p = _probs(t, probs)
    if not t.size:
        return float("nan")
    true_p = np.clip(p[np.arange(t.size), t], _LOG_EPS, 1.0 - _LOG_EPS)
    return float(-np.mean(np.log(true_p)))


def calibration_bins(
    y_true: ArrayLike, probs: ArrayLike, n_bins: int = 15
) -> list[dict[str, float | int]]:
    """Reliability-diagram bins: equal-width confidence bins ``(i/n, (i+1)/n]``.

    Confidence is the top probability, and a sample is right when its argmax is the truth.

    Returns:
        One dict per bin: ``lower``, ``upper``, ``count``, ``accuracy`` and ``confidence``
        (the mean confidence; both 0 for an empty bin).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    t = _labels(y_true)
    p = _probs(t, probs)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    # bin i holds (edges[i], edges[i+1]], the reference implementation's convention (Guo et
    # al.'s code compares against linspace edges); a confidence of exactly 0 joins bin 0
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    acc = _safe_divide(acc_sum, counts)
    mean_conf = _safe_divide(conf_sum, counts)
    return [
        {
            "lower": float(edges[i]),
            "upper": float(edges[i + 1]),
            "count": int(counts[i]),
            "accuracy": float(acc[i]),
            "confidence": float(mean_conf[i]),
        }
        for i in range(n_bins)
    ]


def expected_calibration_error(y_true: ArrayLike, probs: ArrayLike, n_bins: int = 15) -> float:
    """ECE (Guo et al. 2017, "On Calibration of Modern Neural Networks", arXiv:1706.04599).

    ``sum_b |B_b| / N * |accuracy(B_b) - confidence(B_b)|`` over ``n_bins`` equal-width
    confidence bins; 15 bins as in the paper.
    """
    bins = calibration_bins(y_true, probs, n_bins)
    n = sum(int(b["count"]) for b in bins)
    if n == 0:
        return float("nan")
    return float(
        sum(int(b["count"]) / n * abs(float(b["accuracy"]) - float(b["confidence"])) for b in bins)
    )


def classification_metrics(
    y_true: ArrayLike, probs: ArrayLike, classes: list[str], n_bins: int = 15
) -> dict[str, Any]:
    """Every metric ``pocketvision evaluate`` reports, as a JSON-ready dict.

    Args:
        y_true: True class indices, shape (N,).
        probs: Class probabilities, shape (N, K), K == len(classes).
        classes: Class names in logit order.
        n_bins: Confidence bins for the expected calibration error.

    Returns:
        ``num_images``, ``accuracy``, ``top5_accuracy`` (None when K < 5), ``macro_precision``,
        ``macro_recall``, ``macro_f1``, ``log_loss``, ``ece``, ``per_class`` (a list of
        {label, precision, recall, f1, support}), ``confusion_matrix`` (K x K lists, rows true)
        and ``calibration`` (the ECE bins).
    """
    t = _labels(y_true)
    p = _probs(t, probs)
    k = p.shape[1]
    if k != len(classes):
        raise ValueError(f"{k} probability columns but {len(classes)} class names")
    pred = p.argmax(axis=1)
    cm = confusion_matrix(t, pred, k)
    precision, recall, f1, support = precision_recall_f1(cm)
    return {
        "num_images": int(t.size),
        "accuracy": accuracy(t, pred),
        "top5_accuracy": top_k_accuracy(t, p, 5) if k >= 5 else None,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "log_loss": log_loss(t, p),
        "ece": expected_calibration_error(t, p, n_bins),
        "per_class": [
            {
                "label": classes[i],
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in range(k)
        ],
        "confusion_matrix": cm.tolist(),
        "calibration": calibration_bins(t, p, n_bins),
    }
