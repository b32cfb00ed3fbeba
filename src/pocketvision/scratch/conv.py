"""Convolution as one matrix product: im2col, col2im, conv2d and its backward pass.

A convolution slides a (C, kh, kw) kernel over the image and takes a dot product at every
position. Unrolling every window into a column (im2col) turns all those dot products into one
matrix product: the (F, C*kh*kw) filter matrix times the (C*kh*kw, N*Ho*Wo) column matrix.
The backward pass is the same product transposed, plus col2im to add the column gradients back
onto the (overlapping) windows they came from.

Arguments follow ``torch.nn.functional.conv2d``: NCHW arrays; kernel_size, stride, padding and
dilation are an int or an (h, w) pair; depthwise convolution is ``groups == channels``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

IntPair = int | tuple[int, int]


def pair(value: IntPair, name: str = "value") -> tuple[int, int]:
    """Return ``value`` as an (h, w) pair, as torch accepts an int or a pair.

    Raises:
        ValueError: if ``value`` is neither an int nor a pair of ints.
    """
    if isinstance(value, int | np.integer):
        return int(value), int(value)
    if isinstance(value, tuple | list) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"{name} must be an int or an (h, w) pair, got {value!r}")


class Geometry(NamedTuple):
    """Everything im2col needs to know about one sliding window."""

    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    out_h: int
    out_w: int


def conv_geometry(
    in_shape: tuple[int, ...],
    kernel_size: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> Geometry:
    """Output size of a sliding window, with the checks torch makes.

    Args:
        in_shape: (N, C, H, W) of the input.
        kernel_size, stride, padding, dilation: int or (h, w) pair.

    Raises:
        ValueError: naming the shapes, if the (dilated) kernel is larger than the padded input
            or a stride/dilation is not positive.
    """
    if len(in_shape) != 4:
        raise ValueError(f"expected an NCHW input of 4 dimensions, got shape {tuple(in_shape)}")
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    dh, dw = pair(dilation, "dilation")
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(
            f"kernel_size {(kh, kw)}, stride {(sh, sw)} and dilation {(dh, dw)} must be "
            f"positive and padding {(ph, pw)} non-negative"
        )
    h, w = in_shape[2], in_shape[3]
    eff_h, eff_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1  # extent of the dilated kernel
    if eff_h > h + 2 * ph or eff_w > w + 2 * pw:
        raise ValueError(
            f"kernel {(kh, kw)} (dilated extent {(eff_h, eff_w)}) is larger than the padded "
            f"input {(h + 2 * ph, w + 2 * pw)} (input shape {tuple(in_shape)}, padding {(ph, pw)})"
        )
    out_h = (h + 2 * ph - eff_h) // sh + 1
    out_w = (w + 2 * pw - eff_w) // sw + 1
    return Geometry(kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w)


def _windows(xp: np.ndarray, g: Geometry) -> np.ndarray:
    """A read-only (N, C, kh, kw, Ho, Wo) view of every window of the already-padded ``xp``."""
    sn, sc, sy, sx = xp.strides
    n, c = xp.shape[:2]
    return np.lib.stride_tricks.as_strided(
        xp,
        shape=(n, c, g.kh, g.kw, g.out_h, g.out_w),
        strides=(sn, sc, sy * g.dh, sx * g.dw, sy * g.sh, sx * g.sw),
        writeable=False,
    )


def _pad(x: np.ndarray, top: int, bottom: int, left: int, right: int, value: float) -> np.ndarray:
    if top == bottom == left == right == 0:
        return x
    return np.pad(
        x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode="constant", constant_values=value
    )


def im2col(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> np.ndarray:
    """Unroll every kernel window of ``x`` into a column.

    Args:
        x: (N, C, H, W) input.
        kernel_size, stride, padding, dilation: int or (h, w) pair, as in torch.

    Returns:
        (C*kh*kw, N*Ho*Wo) matrix; row index is (c, i, j) in C order, matching
        ``w.reshape(F, -1)`` for a (F, C, kh, kw) weight; column index is (n, y, x).
    """
    g = conv_geometry(x.shape, kernel_size, stride, padding, dilation)
    xp = _pad(x, g.ph, g.ph, g.pw, g.pw, 0.0)
    n, c = x.shape[:2]
    cols = _windows(xp, g).transpose(1, 2, 3, 0, 4, 5)  # (C, kh, kw, N, Ho, Wo)
    return np.ascontiguousarray(cols).reshape(c * g.kh * g.kw, n * g.out_h * g.out_w)


def _col2im_padded(cols6: np.ndarray, padded_shape: tuple[int, ...], g: Geometry) -> np.ndarray:
    """Scatter-add (C, kh, kw, N, Ho, Wo) window values back onto a padded (N, C, Hp, Wp) array.

    One strided slice per kernel tap: the loop is kh*kw long, everything else is vectorized.
    """
    xp = np.zeros(padded_shape, dtype=cols6.dtype)
    for i in range(g.kh):
        y0 = i * g.dh
        for j in range(g.kw):
            x0 = j * g.dw
            xp[:, :, y0 : y0 + g.sh * g.out_h : g.sh, x0 : x0 + g.sw * g.out_w : g.sw] += cols6[
                :, i, j
            ].transpose(1, 0, 2, 3)
    return xp


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> np.ndarray:
    """Adjoint of :func:`im2col`: add each column back onto the window it came from.

    Overlapping windows add up, which is exactly the gradient of im2col.

    Args:
        cols: (C*kh*kw, N*Ho*Wo) matrix, laid out as :func:`im2col` returns it.
        x_shape: (N, C, H, W) of the original input.

    Returns:
        (N, C, H, W) array.
    """
    g = conv_geometry(x_shape, kernel_size, stride, padding, dilation)
    n, c, h, w = x_shape
    cols6 = cols.reshape(c, g.kh, g.kw, n, g.out_h, g.out_w)
    xp = _col2im_padded(cols6, (n, c, h + 2 * g.ph, w + 2 * g.pw), g)
    return xp[:, :, g.ph : g.ph + h, g.pw : g.pw + w]


def _check_groups(x_shape: tuple[int, ...], w_shape: tuple[int, ...], groups: int) -> None:
    if len(w_shape) != 4:
        raise ValueError(f"expected a (F, C/groups, kh, kw) weight, got shape {tuple(w_shape)}")
    c, f = x_shape[1], w_shape[0]
    if groups < 1 or c % groups or f % groups:
        raise ValueError(
            f"input channels {c} (input shape {tuple(x_shape)}) and output channels {f} "
            f"(weight shape {tuple(w_shape)}) must both be divisible by groups={groups}"
        )
    if w_shape[1] != c // groups:
        raise ValueError(
            f"weight shape {tuple(w_shape)} expects {w_shape[1] * groups} input channels with "
            f"groups={groups}, but the input shape {tuple(x_shape)} has {c}"
        )


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    cols: np.ndarray | None = None,
) -> np.ndarray:
    """2-D convolution (cross-correlation, as in every deep learning library).

    Args:
        x: (N, C, H, W) input.
        w: (F, C/groups, kh, kw) filters.
        b: optional (F,) bias.
        stride, padding, dilation: int or (h, w) pair.
        groups: split channels into this many independent convolutions; ``groups == C`` is a
            depthwise convolution.
        cols: ``im2col(x, ...)`` if the caller already has it (a network keeps it for the
            backward pass).

    Returns:
        (N, F, Ho, Wo) output.

    Raises:
        ValueError: naming the shapes, if the channels do not divide by ``groups`` or the
            kernel is larger than the padded input.
    """
    _check_groups(x.shape, w.shape, groups)
    f, cg, kh, kw = w.shape
    g = conv_geometry(x.shape, (kh, kw), stride, padding, dilation)
    n = x.shape[0]
    if cols is None:
        cols = im2col(x, (kh, kw), stride, padding, dilation)  # (C*kh*kw, N*Ho*Wo)
    # Groups become a batch dimension of a single (batched) matrix product:
    # (G, F/G, Cg*kh*kw) @ (G, Cg*kh*kw, N*Ho*Wo) -> (G, F/G, N*Ho*Wo).
    out = np.matmul(
        w.reshape(groups, f // groups, cg * kh * kw),
        cols.reshape(groups, cg * kh * kw, -1),
    )
    out = out.reshape(f, n, g.out_h, g.out_w).transpose(1, 0, 2, 3)
    if b is not None:
        out = out + b.reshape(1, f, 1, 1)
    return np.ascontiguousarray(out)


def conv2d_backward(
    dout: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    cols: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d` with respect to its input, weight and bias.

    Args:
        dout: (N, F, Ho, Wo) gradient of the loss with respect to the output.
        x, w, stride, padding, dilation, groups: as given to :func:`conv2d`.
        cols: ``im2col(x, ...)`` if the caller kept it from the forward pass (saves a copy).

    Returns:
        (dx, dw, db) with the shapes of x, w and (F,).
    """
    _check_groups(x.shape, w.shape, groups)
    f, cg, kh, kw = w.shape
    conv_geometry(x.shape, (kh, kw), stride, padding, dilation)  # validates the shapes
    c = x.shape[1]
    if cols is None:
        cols = im2col(x, (kh, kw), stride, padding, dilation)
    m = cg * kh * kw
    # (N, F, Ho, Wo) -> (G, F/G, N*Ho*Wo), the layout of conv2d's matrix product.
    dout_mat = dout.transpose(1, 0, 2, 3).reshape(groups, f // groups, -1)
    db = dout.sum(axis=(0, 2, 3))
    dw = np.matmul(dout_mat, cols.reshape(groups, m, -1).transpose(0, 2, 1)).reshape(w.shape)
    dcols = np.matmul(w.reshape(groups, f // groups, m).transpose(0, 2, 1), dout_mat)
    dx = col2im(dcols.reshape(c * kh * kw, -1), x.shape, (kh, kw), stride, padding, dilation)
    return np.ascontiguousarray(dx), dw, db
