"""Convolution, optional normalization and optional activation as one nn.Sequential."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

LayerFactory = Callable[..., nn.Module]


def conv_norm_act(
    in_chs: int,
    out_chs: int,
    kernel_size: int = 3,
    stride: int = 1,
    *,
    padding: int | None = None,
    groups: int = 1,
    norm_layer: LayerFactory | None = nn.BatchNorm2d,
    act_layer: LayerFactory | None = nn.ReLU,
    bias: bool | None = None,
) -> nn.Sequential:
    """Conv2d -> norm -> activation; padding defaults to "same" for odd kernels at stride 1.

    Args:
        bias: Defaults to True only when there is no norm layer (a bias before BN is wasted).
        norm_layer: Called with ``out_chs``; None for no normalization.
        act_layer: Called with ``inplace=True``; None for a linear output.
    """
    if padding is None:
        padding = (kernel_size - 1) // 2
    if bias is None:
        bias = norm_layer is None
    layers: list[nn.Module] = [
        nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, groups=groups, bias=bias)
    ]
    if norm_layer is not None:
        layers.append(norm_layer(out_chs))
    if act_layer is not None:
        layers.append(act_layer(inplace=True))
    return nn.Sequential(*layers)
