"""MobileNet v4: the Universal Inverted Bottleneck, searched per stage for every mobile chip.

Qin, Leichner, Delakis, Fornoni, Luo, Yang, Wang, Banbury, Ye, Akin, Aggarwal, Zhu, Moro,
Howard. "MobileNetV4 - Universal Models for the Mobile Ecosystem". ECCV 2024,
arXiv:2404.10518. Builds the convolutional models MNv4-Conv-S and MNv4-Conv-M as the
reference defines them, with the top-1 of the paper's ImageNet results table; its params and
MACs are quoted in each name's note (Conv-M's differ from the released definition: see
docs/models.md). timm's ``mobilenetv4_conv_small`` / ``_medium`` (mobilenetv3.py
``_gen_mobilenet_v4``, after the TensorFlow Model Garden release) are the reference
implementation: the same function, tensor for tensor (see
``pocketvision.weights.convert.timm_mobilenetv4``).

The Universal Inverted Bottleneck (UIB) is an inverted bottleneck with two
optional depthwise convs, one before the expansion ("start") and one after it ("mid"):

- ExtraDW: both; IB (MobileNetV2's block): mid only; ConvNext-like: start only; FFN: neither.
- The block's stride sits on the mid depthwise conv, or on the start one where there is no
  mid (ConvNext). The start depthwise conv and the projection have BN but no activation.
- Residual at stride 1 with in == out (no layer scale in the conv models).

The details that decide the counts:

- Expanded widths are ``make_divisible(in_chs * e, 8)``; output widths
  ``make_divisible(c * width_mult, 8)``. The 32-wide stem is scaled only above width 1 (timm's
  ``fix_stem`` below 1); the 1280-wide head is never scaled.
- The paper's Conv-S table opens with two "FusedIB" rows; the reference builds each as two
  conv-BN-ReLU layers (3x3 stride 2, then 1x1), an activation after the projection and no
  residual (:class:`ConvRow`). Conv-M's first stage is a true FusedIB (:class:`FusedIB`).
- The head: 1x1 conv to 960 at 7x7 (the last stage), global pool, 1x1 conv to 1280 without
  bias, BN and ReLU on the pooled vector, dropout (0 by default, as timm), FC.
- ReLU everywhere; BN eps 1e-5 (PyTorch's, as timm).
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from pocketvision.layers import conv_norm_act, make_divisible
from pocketvision.layers.conv_norm_act import LayerFactory
from pocketvision.registry import Family, Paper, register_model


class ConvRow(NamedTuple):
    """A conv-BN-ReLU layer ("Conv2D" rows; the Conv-S "FusedIB" halves), no residual."""

    k: int  # kernel size
    c: int  # output channels at width 1.0
    s: int  # stride


class FusedIBRow(NamedTuple):
    """Fused inverted bottleneck: kxk conv expanding e times, then a linear 1x1 (+ x)."""

    k: int  # kernel of the expanding conv
    e: float  # expansion ratio
    c: int  # output channels at width 1.0
    s: int  # stride of the expanding conv


class UIBRow(NamedTuple):
    """Universal Inverted Bottleneck: [dw start] -> 1x1 expand -> [dw mid] -> 1x1 linear."""

    start: int  # kernel of the depthwise conv before the expansion; 0: none
    mid: int  # kernel of the depthwise conv after the expansion; 0: none
    e: float  # expansion ratio
    c: int  # output channels at width 1.0
    n: int  # repeats
    s: int  # stride of the first repeat

    @property
    def variant(self) -> str:
        """The paper's name for this instantiation of the UIB."""
        return {(1, 1): "ExtraDW", (0, 1): "IB", (1, 0): "ConvNext", (0, 0): "FFN"}[
            (int(self.start > 0), int(self.mid > 0))
        ]


Row = ConvRow | FusedIBRow | UIBRow
Stages = tuple[tuple[Row, ...], ...]

# Qin et al. 2024, the MNv4-Conv-S architecture table as the reference builds it. The stem is
# a 3x3 stride-2 conv with 32 filters; the last stage is the 1x1 conv to 960; then the head.
MOBILENET_V4_CONV_SMALL: Stages = (
    (ConvRow(3, 32, 2), ConvRow(1, 32, 1)),
    (ConvRow(3, 96, 2), ConvRow(1, 64, 1)),
    (UIBRow(5, 5, 3, 96, 1, 2), UIBRow(0, 3, 2, 96, 4, 1), UIBRow(3, 0, 4, 96, 1, 1)),
    (
        UIBRow(3, 3, 6, 128, 1, 2),
        UIBRow(5, 5, 4, 128, 1, 1),
        UIBRow(0, 5, 4, 128, 1, 1),
        UIBRow(0, 5, 3, 128, 1, 1),
        UIBRow(0, 3, 4, 128, 2, 1),
    ),
    (ConvRow(1, 960, 1),),
)
# MNv4-Conv-M: the same stem, a FusedIB, then UIB stages searched at 256 px.
MOBILENET_V4_CONV_MEDIUM: Stages = (
    (FusedIBRow(3, 4, 48, 2),),
    (UIBRow(3, 5, 4, 80, 1, 2), UIBRow(3, 3, 2, 80, 1, 1)),
    (
        UIBRow(3, 5, 6, 160, 1, 2),
        UIBRow(3, 3, 4, 160, 2, 1),
        UIBRow(3, 5, 4, 160, 1, 1),
        UIBRow(3, 3, 4, 160, 1, 1),
        UIBRow(3, 0, 4, 160, 1, 1),
        UIBRow(0, 0, 2, 160, 1, 1),
        UIBRow(3, 0, 4, 160, 1, 1),
    ),
    (
        UIBRow(5, 5, 6, 256, 1, 2),
        UIBRow(5, 5, 4, 256, 1, 1),
        UIBRow(3, 5, 4, 256, 2, 1),
        UIBRow(0, 0, 4, 256, 1, 1),
        UIBRow(3, 0, 4, 256, 1, 1),
        UIBRow(3, 5, 2, 256, 1, 1),
        UIBRow(5, 5, 4, 256, 1, 1),
        UIBRow(0, 0, 4, 256, 2, 1),
        UIBRow(5, 0, 2, 256, 1, 1),
    ),
    (ConvRow(1, 960, 1),),
)
MOBILENET_V4_STEM = 32
MOBILENET_V4_HEAD = 1280


class FusedIB(nn.Module):
    """kxk conv expanding to ``in_chs * e`` (BN, act), then a 1x1 linear projection (+ x)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        row: FusedIBRow,
        *,
        norm_layer: LayerFactory,
        act_layer: LayerFactory,
    ) -> None:
        super().__init__()
        mid = make_divisible(in_chs * row.e)
        self.use_residual = row.s == 1 and in_chs == out_chs
        self.conv_exp = conv_norm_act(
            in_chs, mid, row.k, row.s, norm_layer=norm_layer, act_layer=act_layer
        )
        self.conv_pwl = conv_norm_act(mid, out_chs, 1, norm_layer=norm_layer, act_layer=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_pwl(self.conv_exp(x))
        return x + out if self.use_residual else out


class UniversalInvertedBottleneck(nn.Module):
    """The UIB: [kxk dw, BN] -> 1x1 expand (BN, act) -> [kxk dw (BN, act)] -> 1x1 linear (+ x).

    Args:
        in_chs: Input channels.
        out_chs: Output channels.
        start: Kernel of the depthwise conv before the expansion (0: none).
        mid: Kernel of the depthwise conv after the expansion (0: none).
        exp_ratio: Expansion ratio; the hidden width is ``make_divisible(in_chs * exp_ratio)``.
        stride: On the mid depthwise conv, or the start one where there is no mid.
        norm_layer: Called with a width.
        act_layer: Called with ``inplace=True``.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        start: int,
        mid: int,
        exp_ratio: float,
        stride: int = 1,
        *,
        norm_layer: LayerFactory,
        act_layer: LayerFactory,
    ) -> None:
        super().__init__()
        if stride > 1 and not (start or mid):
            raise ValueError("a strided UIB needs a depthwise conv (start or mid)")
        hidden = make_divisible(in_chs * exp_ratio)
        self.use_residual = stride == 1 and in_chs == out_chs
        cna = partial(conv_norm_act, norm_layer=norm_layer)
        self.dw_start: nn.Module = (
            cna(in_chs, in_chs, start, 1 if mid else stride, groups=in_chs, act_layer=None)
            if start
            else nn.Identity()
        )
        self.pw_exp = cna(in_chs, hidden, 1, act_layer=act_layer)
        self.dw_mid: nn.Module = (
            cna(hidden, hidden, mid, stride, groups=hidden, act_layer=act_layer)
            if mid
            else nn.Identity()
        )
        self.pw_proj = cna(hidden, out_chs, 1, act_layer=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pw_proj(self.dw_mid(self.pw_exp(self.dw_start(x))))
        return x + out if self.use_residual else out


class MobileNetV4Head(nn.Module):
    """Global pool, 1x1 conv (no bias) + BN + ReLU on the pooled vector, dropout, FC."""

    def __init__(
        self,
        in_features: int,
        hidden: int,
        num_classes: int,
        drop_rate: float,
        *,
        norm_layer: LayerFactory,
        act_layer: LayerFactory,
    ) -> None:
        super().__init__()
        self.pre = conv_norm_act(in_features, hidden, 1, norm_layer=norm_layer, act_layer=act_layer)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre(x.mean((2, 3), keepdim=True)).flatten(1)  # (N, 1280)
        return x if pre_logits else self.fc(self.drop(x))

    def reset(self, num_classes: int) -> None:
        """Replace the final linear layer with a freshly initialised one."""
        self.fc = nn.Linear(self.fc.in_features, num_classes)


def _blocks(
    row: Row, in_chs: int, width_mult: float, norm: LayerFactory, act: LayerFactory
) -> list[nn.Module]:
    out_chs = make_divisible(row.c * width_mult)
    if isinstance(row, ConvRow):
        return [conv_norm_act(in_chs, out_chs, row.k, row.s, norm_layer=norm, act_layer=act)]
    if isinstance(row, FusedIBRow):
        return [FusedIB(in_chs, out_chs, row, norm_layer=norm, act_layer=act)]
    blocks: list[nn.Module] = []
    for i in range(row.n):
        blocks.append(
            UniversalInvertedBottleneck(
                in_chs if i == 0 else out_chs, out_chs, row.start, row.mid, row.e,
                row.s if i == 0 else 1, norm_layer=norm, act_layer=act,
            )
        )  # fmt: skip
    return blocks


class MobileNetV4(nn.Module):
    """Stem conv (32), the stage table (ending in the 1x1 conv to 960), the 1280 head.

    Args:
        stages: Stage table: ``MOBILENET_V4_CONV_SMALL`` or ``MOBILENET_V4_CONV_MEDIUM``.
        num_classes: Classifier outputs.
        in_chans: Input channels.
        width_mult: Width multiplier of the stages (and of the stem above 1.0); the 1280 head
            stays fixed, as in timm's ``mobilenetv4_conv_small_050``.
        small_input: Stride-1 stem (total stride 16), so a 28x28 input ends in a 2x2 map.
        drop_rate: Dropout before the classifier (0, timm's default).
    """

    def __init__(
        self,
        stages: Stages = MOBILENET_V4_CONV_SMALL,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        small_input: bool = False,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        norm, act = nn.BatchNorm2d, nn.ReLU
        stem_chs = MOBILENET_V4_STEM
        if width_mult >= 1.0:
            stem_chs = make_divisible(stem_chs * width_mult)
        stride = 1 if small_input else 2
        self.stem = conv_norm_act(in_chans, stem_chs, 3, stride, norm_layer=norm, act_layer=act)
        body: list[nn.Sequential] = []
        in_chs = stem_chs
        for stage in stages:
            blocks: list[nn.Module] = []
            for row in stage:
                blocks += _blocks(row, in_chs, width_mult, norm, act)
                in_chs = make_divisible(row.c * width_mult)
            body.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*body)
        self.num_features = in_chs
        self.head = MobileNetV4Head(
            in_chs, MOBILENET_V4_HEAD, num_classes, drop_rate, norm_layer=norm, act_layer=act
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # timm's (TF's) initialisation for convs, N(0, 0.01) for the classifier as the other
        # families (timm's U(+-1 / sqrt(out)) is large for a 10-class head)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))  # (N, 960, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.head.reset(num_classes)


MOBILENET_V4 = Family(
    name="MobileNetV4",
    model=MobileNetV4,
    paper=Paper(
        "MobileNetV4 - Universal Models for the Mobile Ecosystem",
        authors="Qin et al.",
        year=2024,
        arxiv="2404.10518",
    ),
    small_input=(
        "The 3x3 stem conv has stride 1 instead of 2 (total stride 16 instead of 32), so a "
        "28x28 input ends in a 2x2 map, not 1x1."
    ),
    first_conv="stem.0",
    classifier="head.fc",
    options=("drop_rate",),
)

_M = 1_000_000
_TABLE = "architecture tables (appendix) and ImageNet-1k results table"

register_model(
    MOBILENET_V4,
    "mobilenet_v4_conv_small",
    {"stages": MOBILENET_V4_CONV_SMALL},
    width_mult=1.0,
    params=3_774_024,
    macs=186 * _M,  # this build = timm's; the paper prints 0.2G (see note)
    top1=73.8,
    table=_TABLE,
    note="Params are timm's exact count; the paper prints 3.8M. MACs are this build's (= "
    "timm's, conv + linear); the paper rounds them to 0.2G.",
)
register_model(
    replace(MOBILENET_V4, input_size=(3, 256, 256)),
    "mobilenet_v4_conv_medium",
    {"stages": MOBILENET_V4_CONV_MEDIUM},
    width_mult=1.0,
    params=9_715_512,
    macs=1080 * _M,  # this build = timm's, at 256 px; the paper prints 1.0G (see note)
    top1=79.9,
    table=_TABLE,
    note="Params and MACs (at 256 px) are this build's, equal to timm's (whose definition "
    "follows the TF Model Garden release); the paper prints 9.2M params and 1.0G MACs, "
    "which that definition does not reach (see docs/models.md).",
)
