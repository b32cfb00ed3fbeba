"""The two pictures ``pocketvision evaluate`` writes: a confusion matrix and the worst mistakes.

matplotlib runs on its file-only "Agg" backend, so plotting works on servers without a display
and never opens a window.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pocketvision.files import write_atomic

# Cell counts are printed inside the matrix only while they stay legible.
_ANNOTATE_MAX_CLASSES = 20
_MISTAKES_COLS = 4


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, buf.getvalue())


def plot_confusion_matrix(
    cm: NDArray[np.int64], classes: list[str], path: Path, title: str = ""
) -> None:
    """Write a confusion-matrix PNG: rows true, columns predicted, shaded by row fraction.

    Shading by the fraction of each true class (the recall row) keeps rare classes visible
    next to common ones; the cells carry the raw counts while K <= 20.
    """
    plt = _pyplot()
    k = len(classes)
    rows = cm.sum(axis=1, keepdims=True).astype(np.float64)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    side = float(np.clip(0.45 * k + 2.5, 4.0, 16.0))
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    if k <= 50:
        ax.set_xticks(range(k), labels=classes, rotation=90 if k > 10 else 45, ha="right")
        ax.set_yticks(range(k), labels=classes)
    if k <= _ANNOTATE_MAX_CLASSES:
        for t in range(k):
            for p in range(k):
                if cm[t, p]:
                    color = "white" if frac[t, p] > 0.5 else "black"
                    ax.text(p, t, str(cm[t, p]), ha="center", va="center", color=color, size=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    _save(fig, path)


def _tile(image: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], str | None]:
    """(C, H, W) uint8 -> an array imshow draws, and the colour map for grayscale."""
    if image.shape[0] == 1:
        return image[0], "gray"
    return image.transpose(1, 2, 0), None


def worst_mistakes(
    y_true: NDArray[np.int64], probs: NDArray[np.float64], limit: int = 16
) -> NDArray[np.int64]:
    """Indices of wrong predictions, most confident first (the most misleading errors)."""
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    conf = probs[wrong, pred[wrong]]
    # stable sort keeps dataset order among equal confidences, so the picture is reproducible
    return wrong[np.argsort(-conf, kind="stable")][:limit]


def plot_mistakes(
    images: NDArray[np.uint8],
    y_true: NDArray[np.int64],
    probs: NDArray[np.float64],
    classes: list[str],
    path: Path,
    limit: int = 16,
) -> list[dict[str, Any]]:
    """Write a PNG grid of the most confident wrong predictions and return what it shows.

    Args:
        images: uint8 (N, C, H, W), as the model saw them before normalisation.
        y_true: True class indices (N,).
        probs: Class probabilities (N, K).
        classes: Class names.
        path: Where the PNG goes.
        limit: At most this many tiles.

    Returns:
        One dict per tile: ``index`` (into the evaluated split), ``true``, ``predicted``,
        ``confidence`` (the predicted class's probability) and ``true_probability``.
    """
    plt = _pyplot()
    idx = worst_mistakes(y_true, probs, limit)
    shown = [
        {
            "index": int(i),
            "true": classes[int(y_true[i])],
            "predicted": classes[int(probs[i].argmax())],
            "confidence": float(probs[i].max()),
            "true_probability": float(probs[i, y_true[i]]),
        }
        for i in idx
    ]
    if not shown:
        fig, ax = plt.subplots(figsize=(4, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"no mistakes on {len(y_true)} images", ha="center", va="center")
        _save(fig, path)
        return shown
    cols = min(_MISTAKES_COLS, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.7 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i, item in zip(axes.flat, idx, shown, strict=False):
        pixels, cmap = _tile(images[int(i)])
        ax.imshow(pixels, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(
            f"true: {item['true']}\npred: {item['predicted']} ({item['confidence']:.2f})",
            fontsize=9,
            color="firebrick",
        )
    fig.suptitle("most confident mistakes")
    _save(fig, path)
    return shown
