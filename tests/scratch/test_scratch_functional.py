"""Activations, loss, linear layer and the mobile blocks against torch and our torch layers.

The NumPy SE block and channel shuffle are the oracle for pocketvision.layers: both are
checked against the very torch modules the model zoo uses, forward and gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pocketvision.layers import SqueezeExcite
from pocketvision.layers import channel_shuffle as torch_channel_shuffle
from pocketvision.scratch import (
    channel_shuffle,
    channel_shuffle_backward,
    cross_entropy,
    cross_entropy_backward,
    linear,
    linear_backward,
    log_softmax,
    relu,
    relu6,
    relu6_backward,
    relu_backward,
    sigmoid,
    softmax,
    squeeze_excite,
    squeeze_excite_backward,
)


def close(ours: np.ndarray, theirs: torch.Tensor) -> None:
    assert np.shape(ours) == tuple(theirs.shape)
    np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize(
    ("ours", "ours_backward", "theirs"),
    [(relu, relu_backward, F.relu), (relu6, relu6_backward, F.relu6)],
)
def test_activations_and_gradients_match_torch(ours, ours_backward, theirs) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-8, 8, (4, 3, 5, 5))  # spans both bends of relu6
    tx = torch.tensor(x, requires_grad=True)
    ref = theirs(tx)
    close(ours(x), ref)
    dout = rng.standard_normal(x.shape)
    ref.backward(torch.tensor(dout))
    close(ours_backward(dout, x), tx.grad)


def test_sigmoid_matches_torch_without_overflow() -> None:
    x = np.array([-1000.0, -30.0, -1.0, 0.0, 2.0, 40.0, 1000.0])
    with np.errstate(over="raise"):
        close(sigmoid(x), torch.sigmoid(torch.tensor(x)))


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 8),
    k=st.integers(2, 12),
    scale=st.sampled_from([1.0, 30.0, 300.0]),
    seed=st.integers(0, 2**16),
)
def test_softmax_cross_entropy_and_gradient_match_torch(n, k, scale, seed) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, k)) * scale  # large logits check numerical stability
    labels = rng.integers(0, k, n)
    t = torch.tensor(logits, requires_grad=True)
    close(softmax(logits, axis=1), torch.softmax(t, 1))
    close(log_softmax(logits, axis=1), torch.log_softmax(t, 1))
    ref = F.cross_entropy(t, torch.tensor(labels))
    assert cross_entropy(logits, labels) == pytest.approx(ref.item(), rel=1e-5, abs=1e-12)
    ref.backward()
    close(cross_entropy_backward(logits, labels), t.grad)


def test_linear_and_gradients_match_torch() -> None:
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ref = F.linear(tx, tw, tb)
    close(linear(x, w, b), ref)
    dout = rng.standard_normal((5, 3))
    ref.backward(torch.tensor(dout))
    for ours, theirs in zip(linear_backward(dout, x, w), (tx.grad, tw.grad, tb.grad), strict=True):
        close(ours, theirs)


@pytest.mark.parametrize(("channels", "groups"), [(6, 2), (6, 3), (12, 4), (8, 8), (5, 1)])
def test_channel_shuffle_matches_the_torch_layer_and_inverts(channels, groups) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, channels, 3, 4))
    tx = torch.tensor(x, requires_grad=True)
    ref = torch_channel_shuffle(tx, groups)
    close(channel_shuffle(x, groups), ref)
    dout = rng.standard_normal(x.shape)
    ref.backward(torch.tensor(dout))
    close(channel_shuffle_backward(dout, groups), tx.grad)
    np.testing.assert_array_equal(channel_shuffle_backward(channel_shuffle(x, groups), groups), x)


def test_channel_shuffle_needs_divisible_channels() -> None:
    with pytest.raises(ValueError, match=r"channels 6 of input shape \(1, 6, 2, 2\).*groups=4"):
        channel_shuffle(np.zeros((1, 6, 2, 2)), 4)


@pytest.mark.parametrize(("channels", "reduction"), [(16, 4), (32, 16), (6, 16)])
def test_squeeze_excite_matches_the_torch_layer_with_gradients(channels, reduction) -> None:
    torch.manual_seed(0)
    se = SqueezeExcite(channels, reduction).double()
    params = [
        p.detach().numpy().copy() for p in (se.fc1.weight, se.fc1.bias, se.fc2.weight, se.fc2.bias)
    ]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, channels, 5, 3))
    tx = torch.tensor(x, requires_grad=True)
    ref = se(tx)
    close(squeeze_excite(x, *params), ref)
    dout = rng.standard_normal(x.shape)
    ref.backward(torch.tensor(dout))
    grads = squeeze_excite_backward(dout, x, *params)
    expected = (tx.grad, se.fc1.weight.grad, se.fc1.bias.grad, se.fc2.weight.grad, se.fc2.bias.grad)
    for ours, theirs in zip(grads, expected, strict=True):
        close(ours, theirs)
