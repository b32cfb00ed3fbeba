"""``pocketvision filter``: apply a kernel (and optionally a pooling step) to any image.

The library function :func:`filter_image` does the work; :func:`explain_figure` draws the
input, the kernel, the grid of windows the stride visits, and the output.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pocketvision.scratch.data import read_image, write_image
from pocketvision.scratch.kernels import NamedKernel, apply_kernel, parse_kernel, to_uint8
from pocketvision.scratch.plotting import new_figure, save_figure, show_image, show_kernel
from pocketvision.scratch.pool import avg_pool2d, max_pool2d


class FilterResult(NamedTuple):
    """What :func:`filter_image` produced."""

    image: np.ndarray  # uint8 input, (H, W) or (H, W, 3)
    kernel: NamedKernel
    response: np.ndarray  # float, signed output of the kernel (before pooling)
    output: np.ndarray  # uint8 image that was written


def parse_pool(text: str) -> tuple[str, int]:
    """``max2`` -> ("max", 2); ``avg3`` -> ("avg", 3): the window is also the stride.

    Raises:
        ValueError: for anything else.
    """
    match = re.fullmatch(r"(max|avg)(\d+)", text.strip().lower())
    if not match or int(match.group(2)) < 1:
        raise ValueError(f"pool {text!r} must be max or avg followed by a window size, e.g. max2")
    return match.group(1), int(match.group(2))


def _pool_planes(planes: np.ndarray, kind: str, size: int) -> np.ndarray:
    """Pool an (H, W) or (H, W, C) float image channel by channel."""
    chw = planes[None] if planes.ndim == 2 else planes.transpose(2, 0, 1)
    pool = max_pool2d if kind == "max" else avg_pool2d
    pooled = pool(chw[:, None], size)[:, 0]
    return pooled[0] if planes.ndim == 2 else pooled.transpose(1, 2, 0)


def filter_image(
    image: str | Path | np.ndarray,
    kernel: str | NamedKernel,
    stride: int = 1,
    pool: str | None = None,
    gray: bool = False,
    out: str | Path | None = None,
) -> FilterResult:
    """Apply a kernel to an image, optionally pool, and optionally write the result.

    Edge kernels (weights summing to 0) are shown as magnitudes, so an edge is bright
    whichever way it faces; pooling works on those magnitudes, so ``max2`` keeps the
    strongest edge in each 2x2 window.

    Args:
        image: a path to any image PIL reads, or a uint8 array.
        kernel: a name from :data:`.kernels.KERNELS` (``sobel-y``) or nine comma-separated
            numbers (``"1,0,-1,2,0,-2,1,0,-1"``).
        stride: step of the kernel; "same" padding (repeating the border pixels) keeps
            ceil(H / stride) rows.
        pool: ``max2``, ``avg2``, ... applied after the kernel.
        gray: convert a color image to grayscale first.
        out: where to write the output image (PNG, JPEG, ... by suffix).

    Raises:
        PocketvisionError: naming the path, if the image cannot be read.
        ValueError: for a kernel that is neither a name nor 9 numbers, or a bad pool.
    """
    pixels = read_image(image, gray=gray) if isinstance(image, str | Path) else np.asarray(image)
    named = parse_kernel(kernel) if isinstance(kernel, str) else kernel
    pool_spec = parse_pool(pool) if pool else None
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    # Edge padding: with zeros the photo's own border would light up as the strongest edge.
    response = apply_kernel(pixels, named.weights, stride=stride, pad_mode="edge")
    shown = np.abs(response) if named.is_edge else response
    if pool_spec:
        shown = _pool_planes(shown, *pool_spec)
    output = to_uint8(shown, magnitude=named.is_edge)
    if out is not None:
        write_image(out, output)
    return FilterResult(pixels, named, response, output)


def explain_figure(result: FilterResult, stride: int, out: str | Path, steps: int = 6) -> Path:
    """Input, kernel, the striding grid on a zoomed patch, and the output, in one PNG.

    The zoomed patch is centred on the strongest response, so it shows something happening.
    Dots mark the centres of the windows the kernel visits (every ``stride`` pixels); one
    window is outlined, with the output pixel it produces.
    """
    from matplotlib.patches import Rectangle

    image, kernel = result.image, result.kernel.weights
    kh, kw = kernel.shape
    strength = np.abs(result.response)
    strength = strength if strength.ndim == 2 else strength.max(axis=2)
    oy, ox = np.unravel_index(int(strength.argmax()), strength.shape)
    # Output (oy, ox) is the window centred on input (oy*stride, ox*stride) ("same" padding).
    cy, cx = oy * stride, ox * stride
    half = steps * stride // 2 + kh // 2 + 1
    y0 = int(np.clip(cy - half, 0, max(0, image.shape[0] - 2 * half)))
    x0 = int(np.clip(cx - half, 0, max(0, image.shape[1] - 2 * half)))
    patch = image[y0 : y0 + 2 * half, x0 : x0 + 2 * half]

    fig = new_figure(16, 4.6)
    ax_in, ax_k, ax_grid, ax_out = fig.subplots(1, 4, width_ratios=[1.2, 0.6, 1, 1.2])
    show_image(ax_in, image, f"input {image.shape[1]}x{image.shape[0]}")
    ax_in.add_patch(
        Rectangle((x0 - 0.5, y0 - 0.5), patch.shape[1], patch.shape[0], fill=False, ec="C3", lw=1.5)
    )
    show_kernel(ax_k, kernel, "kernel\n" + textwrap.fill(result.kernel.meaning, 32))
    show_image(
        ax_grid, patch, f"zoom: windows every {stride} px (stride {stride})", vmin=0, vmax=255
    )
    ax_grid.set_xticks(np.arange(-0.5, patch.shape[1], 1), minor=True)
    ax_grid.set_yticks(np.arange(-0.5, patch.shape[0], 1), minor=True)
    ax_grid.grid(which="minor", color="0.6", lw=0.3)
    ax_grid.tick_params(which="minor", length=0)
    ys = np.arange((-y0) % stride, patch.shape[0], stride)
    xs = np.arange((-x0) % stride, patch.shape[1], stride)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    ax_grid.scatter(gx.ravel(), gy.ravel(), s=8, c="C1", label="window centres")
    ax_grid.add_patch(
        Rectangle(
            (cx - x0 - kw // 2 - 0.5, cy - y0 - kh // 2 - 0.5), kw, kh, fill=False, ec="C3", lw=2
        )
    )
    ax_grid.legend(loc="lower right", fontsize=7)
    shown = "|response|" if result.kernel.is_edge else "response"
    show_image(
        ax_out, result.output, f"output {result.output.shape[1]}x{result.output.shape[0]} ({shown})"
    )
    if result.output.shape[:2] == result.response.shape[:2]:
        ax_out.add_patch(Rectangle((ox - 1.5, oy - 1.5), 3, 3, fill=False, ec="C3", lw=1.5))
    return save_figure(fig, out)
