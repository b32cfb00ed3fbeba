"""Activations, the loss, a fully connected layer and two mobile blocks, with backward passes.

Every ``*_backward`` takes the gradient of the loss with respect to the function's output and
returns the gradient with respect to its inputs, so networks can be trained by hand-written
backpropagation and checked against torch autograd.
"""

from __future__ import annotations

import numpy as np


def relu(x: np.ndarray) -> np.ndarray:
    """max(0, x)."""
    return np.maximum(x, 0)


def relu_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`relu`: passes where x > 0 (torch also gives 0 at exactly 0)."""
    return dout * (x > 0)


def relu6(x: np.ndarray) -> np.ndarray:
    """min(max(0, x), 6): MobileNet's ReLU, bounded so low-precision arithmetic keeps up."""
    return np.clip(x, 0, 6)


def relu6_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`relu6`: passes where 0 < x < 6."""
    return dout * ((x > 0) & (x < 6))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), written so that large |x| does not overflow."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x) / sum(exp(x)) along ``axis``, shifted by the maximum for numerical safety."""
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(x)) without computing the softmax first (stable for large logits)."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class, as ``F.cross_entropy(logits, labels)``.

    Args:
        logits: (N, K) unnormalized scores.
        labels: (N,) integer classes in [0, K).
    """
    logp = log_softmax(logits, axis=1)
    return float(-logp[np.arange(len(labels)), labels].mean())


def cross_entropy_backward(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Gradient of :func:`cross_entropy` with respect to the logits: (softmax - one_hot) / N."""
    grad = softmax(logits, axis=1)
    grad[np.arange(len(labels)), labels] -= 1
    return grad / len(labels)


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Fully connected layer, torch layout: (N, in) @ (out, in).T + (out,)."""
    y = x @ w.T
    return y if b is None else y + b


def linear_backward(
    dout: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`linear`: (dx, dw, db)."""
    return dout @ w, dout.T @ x, dout.sum(axis=0)


def channel_shuffle(x: np.ndarray, groups: int) -> np.ndarray:
    """ShuffleNet's shuffle: (N, g*c, H, W) -> (N, g, c) -> transpose -> (N, c*g, H, W).

    After a grouped convolution each group only saw its own channels; interleaving lets the
    next grouped convolution mix information across groups.

    Raises:
        ValueError: naming the shape, if the channels do not divide by ``groups``.
    """
    n, c, h, w = x.shape
    if groups < 1 or c % groups:
        raise ValueError(
            f"channels {c} of input shape {x.shape} are not divisible by groups={groups}"
        )
    return x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)


def channel_shuffle_backward(dout: np.ndarray, groups: int) -> np.ndarray:
    """Gradient of :func:`channel_shuffle`: the inverse permutation, a shuffle by c/groups."""
    return channel_shuffle(dout, dout.shape[1] // groups)


def _se_weights(w1: np.ndarray, w2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Accept torch's 1x1-conv weights (out, in, 1, 1) as well as linear ones (out, in).
    return w1.reshape(w1.shape[0], -1), w2.reshape(w2.shape[0], -1)


def squeeze_excite(
    x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray
) -> np.ndarray:
    """Squeeze-and-excitation (Hu et al. 2018): reweight channels by a learned gate.

    squeeze: s = mean over H, W; excite: g = sigmoid(w2 @ relu(w1 @ s + b1) + b2); scale x by g.

    Args:
        x: (N, C, H, W).
        w1: (C/r, C) or (C/r, C, 1, 1); b1: (C/r,).
        w2: (C, C/r) or (C, C/r, 1, 1); b2: (C,).
    """
    w1, w2 = _se_weights(w1, w2)
    s = x.mean(axis=(2, 3))  # (N, C)
    gate = sigmoid(relu(s @ w1.T + b1) @ w2.T + b2)  # (N, C)
    return x * gate[:, :, None, None]


def squeeze_excite_backward(
    dout: np.ndarray, x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`squeeze_excite`: (dx, dw1, db1, dw2, db2), weights as given."""
    shape1, shape2 = w1.shape, w2.shape
    w1, w2 = _se_weights(w1, w2)
    h, w = x.shape[2:]
    s = x.mean(axis=(2, 3))
    z1 = s @ w1.T + b1
    a1 = relu(z1)
    gate = sigmoid(a1 @ w2.T + b2)
    # x reaches the output twice: directly (scaled by the gate) and through the gate.
    dgate = (dout * x).sum(axis=(2, 3))  # (N, C)
    dz2 = dgate * gate * (1 - gate)
    da1, dw2, db2 = linear_backward(dz2, a1, w2)
    ds, dw1, db1 = linear_backward(relu_backward(da1, z1), s, w1)
    dx = dout * gate[:, :, None, None] + (ds / (h * w))[:, :, None, None]
    return dx, dw1.reshape(shape1), db1, dw2.reshape(shape2), db2
