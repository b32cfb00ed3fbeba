"""NumPy-only fundamentals: from linear regression to a CNN, as lessons and as a test oracle.

Everything here is written with NumPy alone and never imports torch, so a learner can read
each step, and torch layers and exported models can be tested against it.

- :mod:`.conv`: im2col, col2im, conv2d (one matrix product) and conv2d_backward.
- :mod:`.pool`: max/avg pooling with torch's ceil_mode rules, global average pooling.
- :mod:`.functional`: activations, softmax, cross-entropy, linear, channel shuffle, SE.
- :mod:`.kernels`: classic 3x3 kernels and apply_kernel.
- :mod:`.learners`, :mod:`.networks`: LinearRegression, Perceptron, MLP, LeNet.
- :mod:`.lessons`, :mod:`.filter`: what ``pocketvision lesson`` and ``filter`` run.
"""

from pocketvision.scratch.conv import col2im, conv2d, conv2d_backward, im2col
from pocketvision.scratch.functional import (
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
from pocketvision.scratch.kernels import (
    BOX_BLUR_3,
    EMBOSS,
    GAUSSIAN_BLUR_3,
    KERNELS,
    LAPLACIAN,
    SHARPEN,
    SOBEL_X,
    SOBEL_Y,
    apply_kernel,
)
from pocketvision.scratch.learners import LinearRegression, Perceptron
from pocketvision.scratch.networks import MLP, LeNet
from pocketvision.scratch.pool import (
    avg_pool2d,
    avg_pool2d_backward,
    global_avg_pool,
    global_avg_pool_backward,
    max_pool2d,
    max_pool2d_backward,
)

__all__ = [
    "BOX_BLUR_3",
    "EMBOSS",
    "GAUSSIAN_BLUR_3",
    "KERNELS",
    "LAPLACIAN",
    "MLP",
    "SHARPEN",
    "SOBEL_X",
    "SOBEL_Y",
    "LeNet",
    "LinearRegression",
    "Perceptron",
    "apply_kernel",
    "avg_pool2d",
    "avg_pool2d_backward",
    "channel_shuffle",
    "channel_shuffle_backward",
    "col2im",
    "conv2d",
    "conv2d_backward",
    "cross_entropy",
    "cross_entropy_backward",
    "global_avg_pool",
    "global_avg_pool_backward",
    "im2col",
    "linear",
    "linear_backward",
    "log_softmax",
    "max_pool2d",
    "max_pool2d_backward",
    "relu",
    "relu6",
    "relu6_backward",
    "relu_backward",
    "sigmoid",
    "softmax",
    "squeeze_excite",
    "squeeze_excite_backward",
]
