"""Pooling, forward and backward, with torch's output-size rules (including ``ceil_mode``).

Pooling is a convolution-shaped sliding window that takes the maximum (or the mean) instead
of a dot product, channel by channel. It reuses the strided window view of :mod:`.conv`.
"""

from __future__ import annotations

import numpy as np

from pocketvision.scratch.conv import Geometry, IntPair, _col2im_padded, _pad, pair


def _pool_geometry(
    shape: tuple[int, ...],
    kernel_size: IntPair,
    stride: IntPair | None,
    padding: IntPair,
    ceil_mode: bool,
) -> tuple[Geometry, int, int]:
    """Window geometry and the extra bottom/right padding that ``ceil_mode`` windows need."""
    if len(shape) != 4:
        raise ValueError(f"expected an NCHW input of 4 dimensions, got shape {tuple(shape)}")
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = pair(kernel_size if stride is None else stride, "stride")
    ph, pw = pair(padding, "padding")
    if min(kh, kw, sh, sw) < 1 or ph < 0 or pw < 0 or 2 * ph > kh or 2 * pw > kw:
        raise ValueError(
            f"pooling needs a positive kernel {(kh, kw)} and stride {(sh, sw)}, and padding "
            f"{(ph, pw)} at most half the kernel (as torch requires)"
        )
    h, w = shape[2], shape[3]
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(
            f"pooling kernel {(kh, kw)} is larger than the padded input {(h + 2 * ph, w + 2 * pw)} "
            f"(input shape {tuple(shape)}, padding {(ph, pw)})"
        )

    def out_size(size: int, k: int, s: int, p: int) -> int:
        span = size + 2 * p - k
        out = (-(-span // s) if ceil_mode else span // s) + 1
        # torch: the last window must start inside the input or the left padding.
        if ceil_mode and (out - 1) * s >= size + p:
            out -= 1
        return out

    out_h, out_w = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    extra_h = max(0, (out_h - 1) * sh + kh - (h + 2 * ph))
    extra_w = max(0, (out_w - 1) * sw + kw - (w + 2 * pw))
    return Geometry(kh, kw, sh, sw, ph, pw, 1, 1, out_h, out_w), extra_h, extra_w


def _tap(xp: np.ndarray, g: Geometry, i: int, j: int) -> np.ndarray:
    """View of kernel tap (i, j) of every window: (N, C, Ho, Wo), a strided slice of ``xp``.

    Pooling loops over the kh*kw taps with whole-array operations; reducing over tiny window
    axes of a strided view is several times slower.
    """
    return xp[
        :, :, i : i + g.sh * (g.out_h - 1) + 1 : g.sh, j : j + g.sw * (g.out_w - 1) + 1 : g.sw
    ]


def _taps(g: Geometry) -> list[tuple[int, int]]:
    """Every kernel tap after (0, 0), in row-major order."""
    return [(i, j) for i in range(g.kh) for j in range(g.kw)][1:]


def max_pool2d(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
) -> np.ndarray:
    """Maximum over each window, as ``torch.nn.functional.max_pool2d``.

    Args:
        x: (N, C, H, W) input.
        kernel_size: int or (h, w) pair.
        stride: defaults to ``kernel_size`` (non-overlapping windows).
        padding: implicit -inf padding on both sides.
        ceil_mode: round the output size up, so a partial window at the edge still counts.

    Returns:
        (N, C, Ho, Wo) output.
    """
    g, eh, ew = _pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    xp = _pad(x, g.ph, g.ph + eh, g.pw, g.pw + ew, -np.inf)
    out = _tap(xp, g, 0, 0).copy()
    for i, j in _taps(g):
        np.maximum(out, _tap(xp, g, i, j), out=out)
    return out


def max_pool2d_backward(
    dout: np.ndarray,
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
) -> np.ndarray:
    """Gradient of :func:`max_pool2d`: each window's gradient goes to its maximum.

    Returns:
        dx with the shape of ``x``.
    """
    g, eh, ew = _pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    xp = _pad(x, g.ph, g.ph + eh, g.pw, g.pw + ew, -np.inf)
    h, w = x.shape[2:]
    out = max_pool2d(x, kernel_size, stride, padding, ceil_mode)
    dxp = np.zeros(xp.shape, dtype=dout.dtype)
    unclaimed = np.ones(out.shape, dtype=bool)  # the first maximum in a window wins, as in torch
    for i, j in [(0, 0), *_taps(g)]:
        hit = unclaimed & (_tap(xp, g, i, j) == out)
        _tap(dxp, g, i, j)[...] += dout * hit
        unclaimed &= ~hit
    return dxp[:, :, g.ph : g.ph + h, g.pw : g.pw + w]


def _avg_divisor(
    size: int, out: int, k: int, s: int, p: int, count_include_pad: bool
) -> np.ndarray:
    """Divisor of each output position along one axis, following torch's avg_pool2d."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)  # a ceil_mode window is cut at the padded border
    if not count_include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, size)
    return (end - start).astype(np.float64)


def avg_pool2d(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Mean over each window, as ``torch.nn.functional.avg_pool2d``.

    Zero padding counts in the mean when ``count_include_pad`` (torch's default); windows that
    ``ceil_mode`` lets hang past the padded border are averaged over the part inside it.

    Returns:
        (N, C, Ho, Wo) output.
    """
    g, eh, ew = _pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    xp = _pad(x, g.ph, g.ph + eh, g.pw, g.pw + ew, 0.0)
    total = _tap(xp, g, 0, 0).copy()
    for i, j in _taps(g):
        total += _tap(xp, g, i, j)
    dv_h = _avg_divisor(x.shape[2], g.out_h, g.kh, g.sh, g.ph, count_include_pad)
    dv_w = _avg_divisor(x.shape[3], g.out_w, g.kw, g.sw, g.pw, count_include_pad)
    return (total / np.outer(dv_h, dv_w)).astype(x.dtype)


def avg_pool2d_backward(
    dout: np.ndarray,
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Gradient of :func:`avg_pool2d`: each window spreads its gradient evenly.

    Returns:
        dx with the shape of ``x``.
    """
    g, eh, ew = _pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    n, c, h, w = x.shape
    dv_h = _avg_divisor(h, g.out_h, g.kh, g.sh, g.ph, count_include_pad)
    dv_w = _avg_divisor(w, g.out_w, g.kw, g.sw, g.pw, count_include_pad)
    share = (dout / np.outer(dv_h, dv_w)).astype(dout.dtype)  # (N, C, Ho, Wo)
    cols6 = np.broadcast_to(
        share.transpose(1, 0, 2, 3)[:, None, None], (c, g.kh, g.kw, n, g.out_h, g.out_w)
    )
    padded = (n, c, h + 2 * g.ph + eh, w + 2 * g.pw + ew)
    dxp = _col2im_padded(cols6, padded, g)
    return dxp[:, :, g.ph : g.ph + h, g.pw : g.pw + w]


def global_avg_pool(x: np.ndarray) -> np.ndarray:
    """Mean over all positions: (N, C, H, W) -> (N, C)."""
    return x.mean(axis=(2, 3))


def global_avg_pool_backward(dout: np.ndarray, x_shape: tuple[int, ...]) -> np.ndarray:
    """Gradient of :func:`global_avg_pool`: (N, C) -> (N, C, H, W), spread evenly."""
    n, c, h, w = x_shape
    return np.broadcast_to((dout / (h * w))[:, :, None, None], (n, c, h, w)).copy()
