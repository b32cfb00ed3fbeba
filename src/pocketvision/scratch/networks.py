"""Two networks trained by hand-written backpropagation: an MLP and LeNet.

Each has ``params`` (name -> array), ``forward`` (logits), ``loss_and_grads`` (the backward
pass written out layer by layer, in reverse) and ``predict``; :func:`.training.train_classifier`
trains either.
"""

from __future__ import annotations

import numpy as np

from pocketvision.scratch.conv import conv2d, conv2d_backward, im2col
from pocketvision.scratch.functional import (
    cross_entropy,
    cross_entropy_backward,
    linear,
    linear_backward,
    relu,
    relu_backward,
)
from pocketvision.scratch.pool import max_pool2d, max_pool2d_backward
from pocketvision.scratch.training import Params


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, dtype: type) -> np.ndarray:
    # He et al. 2015: variance 2/fan_in keeps ReLU activations from shrinking layer by layer.
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


class MLP:
    """Two fully connected layers: in -> hidden (ReLU) -> classes.

    Args:
        in_features: length of each input vector (64 for 8x8 digits).
        hidden: width of the hidden layer.
        num_classes: number of outputs.
        seed: random initial weights.
        dtype: float32 trains faster; float64 for gradient checks.
    """

    def __init__(
        self,
        in_features: int = 64,
        hidden: int = 64,
        num_classes: int = 10,
        seed: int = 0,
        dtype: type = np.float32,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.params: Params = {
            "w1": _he(rng, (hidden, in_features), in_features, dtype),
            "b1": np.zeros(hidden, dtype),
            "w2": _he(rng, (num_classes, hidden), hidden, dtype),
            "b2": np.zeros(num_classes, dtype),
        }

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, in_features) -> (N, num_classes) logits."""
        p = self.params
        x = x.reshape(len(x), -1)
        return linear(relu(linear(x, p["w1"], p["b1"])), p["w2"], p["b2"])

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        """Cross-entropy on a batch and the gradient of every parameter."""
        p = self.params
        x = x.reshape(len(x), -1)
        z1 = linear(x, p["w1"], p["b1"])  # (N, hidden)
        a1 = relu(z1)
        logits = linear(a1, p["w2"], p["b2"])  # (N, classes)
        dlogits = cross_entropy_backward(logits, y)
        da1, dw2, db2 = linear_backward(dlogits, a1, p["w2"])
        _, dw1, db1 = linear_backward(relu_backward(da1, z1), x, p["w1"])
        return cross_entropy(logits, y), {"w1": dw1, "b1": db1, "w2": dw2, "b2": db2}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Most likely class of each input."""
        return self.forward(x).argmax(axis=1)


class LeNet:
    """LeNet (LeCun et al. 1998), scaled to 16x16 inputs: conv-pool-conv-pool-fc-fc.

    Shapes for a (N, 1, 16, 16) input::

        conv1 5x5, pad 2, 6 filters   -> (N, 6, 16, 16)  ReLU
        max pool 2x2                  -> (N, 6, 8, 8)
        conv2 5x5, 16 filters         -> (N, 16, 4, 4)   ReLU
        max pool 2x2                  -> (N, 16, 2, 2) -> flatten 64
        fc1 64 -> hidden              ReLU
        fc2 hidden -> classes

    The original used 32x32 inputs, tanh and average pooling; ReLU and max pooling train
    faster and are what the pooling and convolution lessons show.

    Args:
        num_classes: number of outputs.
        hidden: width of the fully connected layer (LeNet-5 has 120 then 84).
        seed: random initial weights.
        dtype: float32 trains faster; float64 for gradient checks.
    """

    def __init__(
        self,
        in_chans: int = 1,
        num_classes: int = 10,
        hidden: int = 84,
        image_size: int = 16,
        seed: int = 0,
        dtype: type = np.float32,
    ) -> None:
        rng = np.random.default_rng(seed)
        flat = 16 * ((image_size // 2 - 4) // 2) ** 2
        self.params: Params = {
            "conv1_w": _he(rng, (6, in_chans, 5, 5), in_chans * 25, dtype),
            "conv1_b": np.zeros(6, dtype),
            "conv2_w": _he(rng, (16, 6, 5, 5), 6 * 25, dtype),
            "conv2_b": np.zeros(16, dtype),
            "fc1_w": _he(rng, (hidden, flat), flat, dtype),
            "fc1_b": np.zeros(hidden, dtype),
            "fc2_w": _he(rng, (num_classes, hidden), hidden, dtype),
            "fc2_b": np.zeros(num_classes, dtype),
        }

    def features(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every intermediate activation of a forward pass, by name (for the lesson's figure)."""
        p = self.params
        acts: dict[str, np.ndarray] = {"input": x}
        acts["cols1"] = im2col(x, 5, 1, 2)  # kept so the backward pass need not unroll again
        acts["conv1"] = conv2d(x, p["conv1_w"], p["conv1_b"], padding=2, cols=acts["cols1"])
        acts["relu1"] = relu(acts["conv1"])
        acts["pool1"] = max_pool2d(acts["relu1"], 2)
        acts["cols2"] = im2col(acts["pool1"], 5)
        acts["conv2"] = conv2d(acts["pool1"], p["conv2_w"], p["conv2_b"], cols=acts["cols2"])
        acts["relu2"] = relu(acts["conv2"])
        acts["pool2"] = max_pool2d(acts["relu2"], 2)
        acts["flat"] = acts["pool2"].reshape(len(x), -1)
        acts["fc1"] = linear(acts["flat"], p["fc1_w"], p["fc1_b"])
        acts["relu3"] = relu(acts["fc1"])
        acts["logits"] = linear(acts["relu3"], p["fc2_w"], p["fc2_b"])
        return acts

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, 1, 16, 16) -> (N, num_classes) logits."""
        return self.features(x)["logits"]

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        """Cross-entropy on a batch and the gradient of every parameter, layer by layer."""
        p, a = self.params, self.features(x)
        g: Params = {}
        d = cross_entropy_backward(a["logits"], y)
        d, g["fc2_w"], g["fc2_b"] = linear_backward(d, a["relu3"], p["fc2_w"])
        d = relu_backward(d, a["fc1"])
        d, g["fc1_w"], g["fc1_b"] = linear_backward(d, a["flat"], p["fc1_w"])
        d = max_pool2d_backward(d.reshape(a["pool2"].shape), a["relu2"], 2)
        d = relu_backward(d, a["conv2"])
        d, g["conv2_w"], g["conv2_b"] = conv2d_backward(
            d, a["pool1"], p["conv2_w"], cols=a["cols2"]
        )
        d = max_pool2d_backward(d, a["relu1"], 2)
        d = relu_backward(d, a["conv1"])
        _, g["conv1_w"], g["conv1_b"] = conv2d_backward(
            d, x, p["conv1_w"], padding=2, cols=a["cols1"]
        )
        return cross_entropy(a["logits"], y), g

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Most likely class of each input."""
        return self.forward(x).argmax(axis=1)
