"""The NumPy convolution against torch (the oracle), forward and gradients, plus its errors.

micrograd's pattern: the same computation in two engines, asserted equal to 1e-5 relative
over a grid of shapes (non-square, odd, strided, padded, dilated, grouped, depthwise) and over
shapes Hypothesis draws.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pocketvision.scratch import col2im, conv2d, conv2d_backward, im2col

RTOL = 1e-5


def assert_matches(ours: np.ndarray, theirs: torch.Tensor) -> None:
    """Equal to 1e-5 relative (float64 on both sides, so the true gap is ~1e-15)."""
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=RTOL, atol=1e-10)


def check_conv(
    n: int,
    c: int,
    h: int,
    w: int,
    f: int,
    k: tuple[int, int],
    stride,
    padding,
    dilation,
    groups: int,
    seed: int = 0,
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((f, c // groups, *k))
    b = rng.standard_normal(f)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, wt, b))
    ref = F.conv2d(tx, tw, tb, stride=stride, padding=padding, dilation=dilation, groups=groups)
    out = conv2d(x, wt, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    assert_matches(out, ref)

    dout = rng.standard_normal(out.shape)
    ref.backward(torch.tensor(dout))
    dx, dw, db = conv2d_backward(dout, x, wt, stride, padding, dilation, groups)
    assert_matches(dx, tx.grad)
    assert_matches(dw, tw.grad)
    assert_matches(db, tb.grad)


CONV_GRID = [
    # n, c, h, w, f, kernel, stride, padding, dilation, groups
    (2, 3, 8, 8, 4, (3, 3), 1, 0, 1, 1),
    (2, 3, 8, 8, 4, (3, 3), 1, 1, 1, 1),
    (1, 3, 7, 11, 5, (3, 3), 2, 1, 1, 1),  # odd, non-square input
    (2, 2, 9, 6, 3, (2, 5), (2, 1), (0, 2), 1, 1),  # non-square kernel, stride, padding
    (1, 4, 10, 9, 6, (3, 3), 1, 2, 2, 1),  # dilation
    (1, 3, 12, 13, 2, (3, 2), (3, 2), (1, 0), (2, 3), 1),  # everything a pair
    (2, 4, 8, 8, 6, (3, 3), 1, 1, 1, 2),  # grouped (ShuffleNet, ResNeXt)
    (1, 6, 9, 7, 6, (3, 3), 2, 1, 1, 6),  # depthwise (MobileNet)
    (1, 4, 9, 9, 8, (3, 3), 1, 1, 1, 4),  # depthwise with channel multiplier 2
    (1, 8, 5, 5, 4, (1, 1), 1, 0, 1, 4),  # grouped pointwise
    (3, 1, 5, 5, 1, (5, 5), 1, 0, 1, 1),  # kernel as large as the input
    (1, 3, 6, 6, 2, (7, 7), 1, 1, 1, 1),  # kernel larger than input, fits the padding
]


@pytest.mark.parametrize(
    ("n", "c", "h", "w", "f", "k", "stride", "padding", "dilation", "groups"), CONV_GRID
)
def test_conv2d_matches_torch_forward_and_gradients(
    n, c, h, w, f, k, stride, padding, dilation, groups
) -> None:
    check_conv(n, c, h, w, f, k, stride, padding, dilation, groups)


def test_conv2d_float32_stays_float32_and_close() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 10, 10)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    out = conv2d(x, w, padding=1)
    assert out.dtype == np.float32
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_conv2d_is_one_matrix_product_of_im2col() -> None:
    """conv2d == weight matrix (F x C*kh*kw) . im2col (C*kh*kw x N*Ho*Wo), reshaped."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 7))
    w = rng.standard_normal((5, 3, 3, 3))
    cols = im2col(x, 3, stride=2, padding=1)
    assert cols.shape == (3 * 9, 2 * 3 * 4)
    product = (w.reshape(5, -1) @ cols).reshape(5, 2, 3, 4).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(conv2d(x, w, stride=2, padding=1), product, rtol=1e-12)


def test_im2col_column_is_the_window() -> None:
    x = np.arange(2 * 1 * 4 * 5, dtype=np.float64).reshape(2, 1, 4, 5)
    cols = im2col(x, (2, 3), stride=1, padding=0)  # Ho=3, Wo=3
    # Column for n=1, y=2, x=1 is the window x[1, 0, 2:4, 1:4], flattened row by row.
    np.testing.assert_array_equal(cols[:, 1 * 9 + 2 * 3 + 1], x[1, 0, 2:4, 1:4].ravel())


def test_im2col_matches_torch_unfold() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))
    ref = F.unfold(torch.tensor(x), (3, 2), dilation=(1, 2), padding=(1, 0), stride=(2, 1))
    ours = im2col(x, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2))
    # torch lays out (N, C*kh*kw, L); ours is (C*kh*kw, N*L).
    np.testing.assert_allclose(ours, ref.numpy().transpose(1, 0, 2).reshape(ours.shape), rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2),
    cg=st.integers(1, 3),
    fg=st.integers(1, 3),
    groups=st.integers(1, 3),
    h=st.integers(1, 11),
    w=st.integers(1, 11),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    seed=st.integers(0, 2**16),
)
def test_conv2d_matches_torch_on_random_shapes(
    n, cg, fg, groups, h, w, kh, kw, stride, padding, dilation, seed
) -> None:
    assume(dilation[0] * (kh - 1) + 1 <= h + 2 * padding[0])
    assume(dilation[1] * (kw - 1) + 1 <= w + 2 * padding[1])
    check_conv(n, cg * groups, h, w, fg * groups, (kh, kw), stride, padding, dilation, groups, seed)


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(2, 9),
    w=st.integers(2, 9),
    k=st.integers(1, 3),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_col2im_is_the_adjoint_of_im2col(h, w, k, stride, padding, seed) -> None:
    """<im2col(x), y> == <x, col2im(y)> for all x, y: col2im is exactly im2col's gradient."""
    assume(k <= min(h, w) + 2 * padding)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, h, w))
    cols = im2col(x, k, stride, padding)
    y = rng.standard_normal(cols.shape)
    lhs = float((cols * y).sum())
    rhs = float((x * col2im(y, x.shape, k, stride, padding)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


def test_channels_not_divisible_by_groups_names_the_shapes() -> None:
    x, w = np.zeros((1, 6, 8, 8)), np.zeros((4, 2, 3, 3))
    with pytest.raises(
        ValueError, match=r"input channels 6 \(input shape \(1, 6, 8, 8\)\).*groups=4"
    ):
        conv2d(x, w, groups=4)


def test_weight_channels_must_match_input_channels() -> None:
    with pytest.raises(
        ValueError, match=r"weight shape \(4, 2, 3, 3\).*input shape \(1, 3, 8, 8\)"
    ):
        conv2d(np.zeros((1, 3, 8, 8)), np.zeros((4, 2, 3, 3)))


def test_kernel_larger_than_padded_input_names_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"kernel \(5, 5\).*padded input \(4, 6\).*\(1, 1, 2, 4\)"):
        conv2d(np.zeros((1, 1, 2, 4)), np.zeros((1, 1, 5, 5)), padding=1)
    with pytest.raises(ValueError, match=r"dilated extent \(5, 5\)"):
        im2col(np.zeros((1, 1, 4, 4)), 3, dilation=2)


def test_bad_pair_argument() -> None:
    with pytest.raises(ValueError, match="stride must be an int or an"):
        conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), stride=(1, 2, 3))  # type: ignore[arg-type]
