"""NumPy pooling against torch: forward and gradients, including ceil_mode and padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pocketvision.scratch import (
    avg_pool2d,
    avg_pool2d_backward,
    global_avg_pool,
    global_avg_pool_backward,
    max_pool2d,
    max_pool2d_backward,
)


def close(ours: np.ndarray, theirs: torch.Tensor) -> None:
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-5, atol=1e-10)


def check_pool(
    kind: str, shape, kernel, stride, padding, ceil_mode, count_include_pad=True, seed=0
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)  # continuous values: no ties for max pooling
    tx = torch.tensor(x, requires_grad=True)
    if kind == "max":
        ref = F.max_pool2d(tx, kernel, stride, padding, ceil_mode=ceil_mode)
        out = max_pool2d(x, kernel, stride, padding, ceil_mode)
    else:
        ref = F.avg_pool2d(
            tx, kernel, stride, padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad
        )
        out = avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad)
    close(out, ref)
    dout = rng.standard_normal(out.shape)
    ref.backward(torch.tensor(dout))
    if kind == "max":
        dx = max_pool2d_backward(dout, x, kernel, stride, padding, ceil_mode)
    else:
        dx = avg_pool2d_backward(dout, x, kernel, stride, padding, ceil_mode, count_include_pad)
    close(dx, tx.grad)


POOL_GRID = [
    # shape, kernel, stride, padding, ceil_mode
    ((2, 3, 8, 8), 2, None, 0, False),
    ((1, 2, 7, 9), 2, None, 0, False),  # odd sizes drop the last row/column
    ((1, 2, 7, 9), 2, None, 0, True),  # ... unless ceil_mode keeps a partial window
    ((1, 3, 7, 7), 3, 2, 1, False),  # ResNet's stem pool
    ((1, 3, 8, 8), 3, 2, 1, True),
    ((1, 3, 14, 14), 3, 2, 0, True),  # SqueezeNet's pools (ceil_mode)
    ((1, 3, 13, 13), 3, 2, 0, True),
    ((2, 1, 6, 11), (2, 3), (1, 2), (1, 0), False),  # pairs
    ((2, 1, 6, 11), (3, 2), (2, 3), (1, 1), True),
    ((1, 1, 5, 5), 5, 1, 0, False),  # one window = global pool
]


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding", "ceil_mode"), POOL_GRID)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_matches_torch(kind, shape, kernel, stride, padding, ceil_mode) -> None:
    check_pool(kind, shape, kernel, stride, padding, ceil_mode)


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding", "ceil_mode"), POOL_GRID[3:])
def test_avg_pool_without_padding_in_the_count_matches_torch(
    shape, kernel, stride, padding, ceil_mode
) -> None:
    check_pool("avg", shape, kernel, stride, padding, ceil_mode, count_include_pad=False)


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["max", "avg"]),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    ph=st.integers(0, 2),
    pw=st.integers(0, 2),
    ceil_mode=st.booleans(),
    count_include_pad=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_pool_matches_torch_on_random_shapes(
    kind, h, w, kh, kw, stride, ph, pw, ceil_mode, count_include_pad, seed
) -> None:
    assume(2 * ph <= kh and 2 * pw <= kw)  # torch's rule: padding at most half the kernel
    assume(kh <= h + 2 * ph and kw <= w + 2 * pw)
    check_pool(kind, (2, 2, h, w), (kh, kw), stride, (ph, pw), ceil_mode, count_include_pad, seed)


def test_global_avg_pool_and_gradient_match_torch() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 7, 3))
    tx = torch.tensor(x, requires_grad=True)
    ref = F.adaptive_avg_pool2d(tx, 1).flatten(1)
    close(global_avg_pool(x), ref)
    dout = rng.standard_normal((2, 5))
    ref.backward(torch.tensor(dout))
    close(global_avg_pool_backward(dout, x.shape), tx.grad)


def test_pool_kernel_larger_than_padded_input_names_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"kernel \(4, 4\).*padded input \(3, 3\).*\(1, 1, 3, 3\)"):
        max_pool2d(np.zeros((1, 1, 3, 3)), 4)


def test_pool_padding_more_than_half_the_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="padding"):
        avg_pool2d(np.zeros((1, 1, 6, 6)), 2, padding=2)
