"""The model as a phone runs it: :func:`mobile_form` (what every exporter converts, and what
quantisation-aware training trains) and :class:`ChannelsLast`, the NHWC face LiteRT files have.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from pocketvision.layers.reparameterize import deploy_form

#: The LiteRT signature's input and output names.
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


class ChannelsLast(nn.Module):
    """Takes NHWC (what a Bitmap gives), returns named logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {OUTPUT_NAME: self.model(image.permute(0, 3, 1, 2))}  # (N, H, W, C) -> NCHW


class GlobalAvgPool(nn.Module):
    """Mean over H and W with keepdim: a pattern every mobile delegate takes whole."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class GlobalMaxPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3), keepdim=True)


def _bins(size: int, out: int) -> tuple[int, int] | None:
    """(kernel, stride) of a plain pool equal to adaptive pooling ``size`` -> ``out``, if any.

    Adaptive bin i spans [floor(i * size / out), ceil((i + 1) * size / out)); a fixed pool
    matches when every bin has the same length and the starts step evenly (6 -> 5 is
    kernel 2, stride 1).
    """
    starts = [i * size // out for i in range(out)]
    ends = [-(-(i + 1) * size // out) for i in range(out)]
    kernels = {e - b for b, e in zip(starts, ends, strict=True)}
    steps = {b - a for a, b in itertools.pairwise(starts)} or {1}
    if len(kernels) == 1 and len(steps) == 1:
        return kernels.pop(), steps.pop()
    return None


def _fixed_pool(module: nn.Module, in_hw: tuple[int, int]) -> nn.Module | None:
    """The fixed-size equivalent of an adaptive pool at a known input size, if one exists."""
    out: Any = getattr(module, "output_size")  # noqa: B009  (both adaptive pools have it)
    oh, ow = (out, out) if isinstance(out, int) else tuple(out)
    h, w = in_hw
    oh, ow = oh or h, ow or w  # None in output_size keeps that dimension
    if (oh, ow) == (h, w):
        return nn.Identity()
    is_max = isinstance(module, nn.AdaptiveMaxPool2d)
    if (oh, ow) == (1, 1):
        return GlobalMaxPool() if is_max else GlobalAvgPool()
    along_h, along_w = _bins(h, oh), _bins(w, ow)
    if along_h is None or along_w is None:
        return None  # uneven bins: no fixed pool computes the same thing
    kernel, stride = (along_h[0], along_w[0]), (along_h[1], along_w[1])
    return nn.MaxPool2d(kernel, stride) if is_max else nn.AvgPool2d(kernel, stride)


def _padded_avg_pool(module: nn.Module) -> nn.Module | None:
    """AvgPool2d that averages in its zero padding (count_include_pad, PyTorch's default),
    as an explicit zero pad and an unpadded pool: the same numbers, and XNNPACK runs both
    (it rejects padding inside an averaging pool)."""
    if not isinstance(module, nn.AvgPool2d) or module.ceil_mode or module.divisor_override:
        return None
    pad = module.padding
    ph, pw = (pad, pad) if isinstance(pad, int) else pad
    if not module.count_include_pad or (ph, pw) == (0, 0):
        return None
    return nn.Sequential(
        nn.ZeroPad2d((pw, pw, ph, ph)), nn.AvgPool2d(module.kernel_size, module.stride, 0)
    )


def mobile_form(model: nn.Module, input_size: Sequence[int]) -> nn.Module:
    """A copy of ``model`` that mobile delegates run whole, computing the same function.

    Padded average pools become a zero pad and an unpadded pool. Adaptive pooling has no
    XNNPACK kernel, so ExecuTorch would run it outside the delegate;
    at a fixed input size it is a global mean (keepdim), a plain average pool or nothing at
    all. The copy computes the same function at ``input_size`` (the checks compare it with
    the original model's logits). A re-parameterisable model (MobileOne) is folded into its
    inference form first (:func:`~pocketvision.layers.deploy_form`).
    """
    deployed = deploy_form(model)
    model = (copy.deepcopy(model) if deployed is model else deployed).eval()
    shapes: dict[str, tuple[int, int]] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):

            def record(mod: nn.Module, args: tuple[Any, ...], _out: Any, name: str = name) -> None:
                shapes[name] = (int(args[0].shape[-2]), int(args[0].shape[-1]))

            hooks.append(module.register_forward_hook(record))
    with torch.no_grad():
        model(torch.zeros(1, *input_size))
    for hook in hooks:
        hook.remove()
    for name, module in list(model.named_modules()):
        replacement = _padded_avg_pool(module)
        if replacement is not None:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, replacement)
    for name, hw in shapes.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        replacement = _fixed_pool(parent.get_submodule(child), hw)
        if replacement is not None:
            setattr(parent, child, replacement)
    return model
