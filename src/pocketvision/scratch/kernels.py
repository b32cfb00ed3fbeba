"""Classic 3x3 image kernels, and applying one to a grayscale or RGB image.

Before networks learned their filters, people designed them by hand. A CNN's first layer
learns filters that look much like these (see ``pocketvision lesson lenet``).

Like every deep learning library, :func:`apply_kernel` computes a cross-correlation: the kernel
is laid on the image as written, not flipped. For the symmetric kernels this is the same as a
convolution; for Sobel it decides the sign, which is why edges are shown as magnitudes.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from pocketvision.scratch.conv import conv2d

#: Gaussian blur: weights 1/4 at the centre, 1/8 at the four sides, 1/16 at the corners
#: (the outer product of the binomial [1, 2, 1] / 4). Smooths noise, keeps edges softer than
#: a box blur. Sums to 1, so flat regions keep their brightness.
GAUSSIAN_BLUR_3 = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 16

#: Box blur: the plain mean of the 3x3 neighbourhood, 1/9 each. Sums to 1.
BOX_BLUR_3 = np.full((3, 3), 1 / 9, dtype=np.float64)

#: Sobel x: horizontal derivative (right minus left), smoothed vertically by [1, 2, 1].
#: Responds to vertical edges. Sums to 0, so flat regions give 0.
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)

#: Sobel y: vertical derivative (bottom minus top), smoothed horizontally by [1, 2, 1].
#: Responds to horizontal edges. The transpose of SOBEL_X. Sums to 0.
SOBEL_Y = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64)

#: Laplacian: sum of second derivatives (4-neighbour form), centre minus its neighbours.
#: Responds to edges in every direction and to fine detail; sums to 0.
LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)

#: Sharpen: the image plus its (negated) Laplacian, which boosts detail. Sums to 1.
SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)

#: Emboss: a diagonal derivative plus the image, so edges look raised, lit from the top left.
#: Sums to 1.
EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)


class NamedKernel(NamedTuple):
    """A kernel with the words that explain it."""

    weights: np.ndarray
    meaning: str
    is_edge: bool  # sums to 0: the output is signed, so it is shown as a magnitude


KERNELS: dict[str, NamedKernel] = {
    "gaussian-blur": NamedKernel(
        GAUSSIAN_BLUR_3, "Gaussian blur: weighted mean, centre counts most", False
    ),
    "box-blur": NamedKernel(BOX_BLUR_3, "box blur: plain mean of the 3x3 neighbourhood", False),
    "sobel-x": NamedKernel(SOBEL_X, "Sobel x: right minus left, finds vertical edges", True),
    "sobel-y": NamedKernel(SOBEL_Y, "Sobel y: bottom minus top, finds horizontal edges", True),
    "laplacian": NamedKernel(
        LAPLACIAN, "Laplacian: centre minus neighbours, edges in all directions", True
    ),
    "sharpen": NamedKernel(SHARPEN, "sharpen: image minus its Laplacian, boosts detail", False),
    "emboss": NamedKernel(
        EMBOSS, "emboss: diagonal derivative plus the image, raised relief", False
    ),
}


def parse_kernel(text: str) -> NamedKernel:
    """A kernel from a name in :data:`KERNELS` or nine comma-separated numbers (row by row).

    Raises:
        ValueError: if the text is neither a known name nor exactly 9 numbers.
    """
    key = text.strip().lower()
    if key in KERNELS:
        return KERNELS[key]
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        values = np.array([float(p) for p in parts], dtype=np.float64)
    except ValueError:
        raise ValueError(
            f"kernel {text!r} is neither a known name ({', '.join(KERNELS)}) nor 9 "
            "comma-separated numbers such as '1,0,-1,2,0,-2,1,0,-1'"
        ) from None
    if values.size != 9:
        raise ValueError(
            f"a text kernel must be 3x3 = 9 numbers, got {values.size} from {text!r} "
            "(e.g. '1,0,-1,2,0,-2,1,0,-1')"
        )
    weights = values.reshape(3, 3)
    is_edge = bool(abs(weights.sum()) < 1e-9)
    return NamedKernel(weights, "custom 3x3 kernel", is_edge)


def apply_kernel(
    image: np.ndarray,
    kernel: np.ndarray,
    stride: int = 1,
    padding: int | Literal["same", "valid"] = "same",
    pad_mode: Literal["zeros", "edge"] = "zeros",
) -> np.ndarray:
    """Slide ``kernel`` over a grayscale or RGB image, channel by channel.

    Args:
        image: (H, W) grayscale or (H, W, C) color image, any numeric dtype.
        kernel: (kh, kw) weights.
        stride: step between windows; 2 halves each side.
        padding: ``"same"`` pads kh//2 (an odd kernel at stride 1 keeps the size), ``"valid"``
            pads nothing, an int pads that many pixels on each side.
        pad_mode: ``"zeros"`` pads with 0 as a CNN does; ``"edge"`` repeats the border
            pixels, so the image's own border does not show up as an edge (for viewing).

    Returns:
        float64 response, (Ho, Wo) or (Ho, Wo, C); unclipped and signed.

    Raises:
        ValueError: naming the shapes, if the image is not 2-D or 3-D or the kernel is larger
            than the padded image.
    """
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if image.ndim not in (2, 3) or kernel.ndim != 2:
        raise ValueError(
            f"expected an (H, W) or (H, W, C) image and a 2-D kernel, got image shape "
            f"{image.shape} and kernel shape {kernel.shape}"
        )
    if padding == "same":
        pad = (kernel.shape[0] // 2, kernel.shape[1] // 2)
    elif padding == "valid":
        pad = (0, 0)
    else:
        pad = (int(padding), int(padding))
    if pad_mode not in ("zeros", "edge"):
        raise ValueError(f"pad_mode must be 'zeros' or 'edge', got {pad_mode!r}")
    # Channels become the batch: the same single-channel kernel runs on each one.
    planes = (image[None] if image.ndim == 2 else image.transpose(2, 0, 1))[:, None]
    if pad_mode == "edge":
        planes = np.pad(planes, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])), mode="edge")
        pad = (0, 0)
    out = conv2d(planes, kernel[None, None], stride=stride, padding=pad)[:, 0]
    return out[0] if image.ndim == 2 else out.transpose(1, 2, 0)


#: Edge magnitudes are scaled so this percentile maps to 255 (see :func:`to_uint8`).
EDGE_PERCENTILE = 99.5


def to_uint8(response: np.ndarray, magnitude: bool) -> np.ndarray:
    """Turn a kernel's response into a displayable uint8 image.

    Args:
        response: output of :func:`apply_kernel`.
        magnitude: for edge kernels (weights summing to 0): show |response|, so an edge is
            bright whichever way it faces, scaled so that the 99.5th percentile of |response|
            (or the maximum, if that percentile is 0) becomes 255; the few stronger responses
            clip. Scaling by the single strongest edge would leave most edges nearly black.
            Otherwise the response is already in pixel units and is clipped to [0, 255].
    """
    if magnitude:
        mag = np.abs(response)
        peak = float(np.percentile(mag, EDGE_PERCENTILE)) or float(mag.max())
        scaled = mag * (255.0 / peak) if peak > 0 else mag
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return np.clip(np.rint(response), 0, 255).astype(np.uint8)
