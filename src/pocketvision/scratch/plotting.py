"""Matplotlib helpers for the lessons and ``filter --explain``: Agg only, no pyplot state.

Figures are built with :class:`matplotlib.figure.Figure` directly, which needs no GUI backend
and leaves pyplot's global state alone; matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches, drawn at 100 dpi with constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save_figure(fig: Figure, out: str | Path) -> Path:
    """Write ``fig`` as a PNG, creating the folder; returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def show_image(ax: Axes, image: np.ndarray, title: str, **kwargs: Any) -> None:
    """Show a grayscale or RGB image without axes ticks."""
    if image.ndim == 2:
        kwargs.setdefault("cmap", "gray")
    ax.imshow(image, interpolation="nearest", **kwargs)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def show_kernel(ax: Axes, kernel: np.ndarray, title: str) -> None:
    """A kernel as a diverging heat map with every weight written in its cell."""
    limit = float(np.abs(kernel).max()) or 1.0
    ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for (i, j), value in np.ndenumerate(kernel):
        ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=9)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
