"""The page's convolution playground, computed by the NumPy scratch engine.

One 3x3 kernel slides over the grayscale image (:func:`pocketvision.scratch.kernels.apply_kernel`:
cross-correlation, zero or edge padding or none, the given stride), optionally followed by 2x2 max pooling
(:func:`pocketvision.scratch.pool.max_pool2d`), and the result is shown with
:func:`pocketvision.scratch.kernels.to_uint8`: edge kernels (weights summing to 0) as
magnitudes scaled so the strongest edge is white, every other kernel clipped to [0, 255].
"""

from __future__ import annotations

import re
from typing import Any, Literal

import numpy as np
from PIL import Image

from pocketvision.preprocess import open_image
from pocketvision.scratch.kernels import KERNELS, NamedKernel, apply_kernel, parse_kernel, to_uint8
from pocketvision.scratch.pool import max_pool2d
from pocketvision.web.served import png_data_url

#: Images are shrunk so their longer side is at most this, keeping each request small.
MAX_SIDE = 320
#: Shorter sides are enlarged to this: a 3x3 window at stride 3 and 2x2 pooling still fit.
MIN_SIDE = 8
#: "same" pads with zeros as a CNN does, "edge" repeats border pixels (no border edges),
#: "valid" does not pad.
Padding = Literal["same", "edge", "valid"]
PADDINGS: tuple[Padding, ...] = ("same", "edge", "valid")
STRIDES = (1, 2, 3)
# One weight as the page's number inputs write it; at most 15 digits and a 2-digit exponent,
# so every weight and every response to a uint8 image stays finite in float64.
_NUMBER = r"[-+]?(?:[0-9]{1,15}(?:\.[0-9]{0,15})?|\.[0-9]{1,15})(?:[eE][-+]?[0-9]{1,2})?"
#: What the kernel field accepts: a name from KERNELS, or 9 weights row by row.
KERNEL_PATTERN = rf"^ *(?:{'|'.join(KERNELS)}|{_NUMBER}(?:[ ,;]+{_NUMBER}){{8}}) *$"


def kernel_list() -> list[dict[str, Any]]:
    """Every named kernel with its weights and meaning, for the page's menu."""
    return [
        {"name": name, "weights": k.weights.tolist(), "meaning": k.meaning, "is_edge": k.is_edge}
        for name, k in KERNELS.items()
    ]


def playground_image(data: bytes) -> np.ndarray:
    """Decode to grayscale uint8 (H, W), each side within [MIN_SIDE, MAX_SIDE].

    Large images shrink (bilinear) so the longer side is MAX_SIDE; a side under MIN_SIDE is
    enlarged (nearest neighbour, so its pixels show as blocks) so every stride, padding and
    pooling choice still has an output.

    Raises:
        pocketvision.preprocess.BadImageError: not an image, truncated, or a bomb.
    """
    img = open_image(data, "L")
    scale = min(1.0, MAX_SIDE / max(img.size))
    size = (max(MIN_SIDE, round(img.width * scale)), max(MIN_SIDE, round(img.height * scale)))
    if size != img.size:
        shrink = scale < 1
        img = img.resize(size, Image.Resampling.BILINEAR if shrink else Image.Resampling.NEAREST)
    return np.asarray(img, dtype=np.uint8)


def resolve_kernel(kernel: str) -> tuple[str, NamedKernel]:
    """A named kernel or 9 numbers matching :data:`KERNEL_PATTERN`; ValueError with the reason."""
    named = parse_kernel(kernel)  # the reason for the common mistakes: unknown name, 8 numbers
    if not re.fullmatch(KERNEL_PATTERN, kernel):
        raise ValueError(
            f"kernel {kernel!r}: use a lower-case name, or weights of at most 15 digits "
            "with at most a 2-digit exponent, such as '1,0,-1,2,0,-2,1,0,-1'"
        )
    key = kernel.strip()
    return (key if key in KERNELS else "custom"), named


def convolve(
    image: np.ndarray, kernel: str, stride: int = 1, padding: str = "same", pool: bool = False
) -> dict[str, Any]:
    """Apply a kernel (and optionally 2x2 max pooling) to a grayscale uint8 image.

    Args:
        image: uint8 (H, W).
        kernel: A name from :data:`pocketvision.scratch.kernels.KERNELS` or 9 numbers.
        stride: Step between windows (1, 2 or 3).
        padding: "same" (zero padding of 1, as a CNN pads), "edge" (padding of 1 repeating the
            border pixels, so the image's border is not an edge) or "valid" (none).
        pool: Follow with 2x2 max pooling (stride 2) of the displayed response.

    Returns:
        ``input`` and ``output`` as PNG data URLs, their shapes, the kernel used, and the
        response's signed range before display scaling.

    Raises:
        ValueError: a bad kernel, stride or padding, or an image smaller than the window.
    """
    if stride not in STRIDES:
        raise ValueError(f"stride {stride} not supported; use one of {STRIDES}")
    if padding not in PADDINGS:
        raise ValueError(f"padding {padding!r} not supported; use one of {PADDINGS}")
    name, named = resolve_kernel(kernel)
    pad: Literal["same", "valid"] = "valid" if padding == "valid" else "same"
    mode: Literal["zeros", "edge"] = "edge" if padding == "edge" else "zeros"
    response = apply_kernel(image, named.weights, stride=stride, padding=pad, pad_mode=mode)
    # What a CNN shows the next layer: edge responses as magnitudes, others as they are;
    # pooling takes the maximum of exactly what is displayed.
    shown = np.abs(response) if named.is_edge else response
    if pool:
        shown = max_pool2d(shown[None, None], 2, 2)[0, 0]
    output = to_uint8(shown, magnitude=named.is_edge)
    return {
        "kernel": name,
        "weights": named.weights.tolist(),
        "meaning": named.meaning,
        "is_edge": named.is_edge,
        "stride": stride,
        "padding": padding,
        "pool": pool,
        "input_shape": list(image.shape),
        "response_shape": list(response.shape),
        "output_shape": list(output.shape),
        "response_min": float(response.min()),
        "response_max": float(response.max()),
        "input": png_data_url(image),
        "output": png_data_url(output),
    }
