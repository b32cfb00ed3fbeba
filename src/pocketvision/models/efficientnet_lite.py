"""EfficientNet-Lite: compound-scaled EfficientNet without SE or swish, for int8 on phones.

Tan, Le. "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks". ICML
2019, arXiv:1905.11946: Table 1 (the B0 body) and Sec. 3.3 (compound scaling); with the
Lite changes of the TensorFlow TPU repository's ``models/official/efficientnet/lite``
README (2020), whose table gives params, MAdds and top-1 of lite0-lite4. timm's
``tf_efficientnet_lite0`` .. ``4`` are the reference implementation (Google's checkpoints
ported); their keys map onto ours by ``pocketvision.weights.convert.timm_efficientnet_lite``,
so those checkpoints load and compute the same function (docs/models.md).

The Lite changes, and the details that decide the counts:

- No squeeze-and-excite; ReLU6 instead of swish everywhere (easier post-training int8).
- The stem (32) and the head (1280) are fixed, not scaled with the width; every other
  width is ``make_divisible(c * width_mult, 8)``.
- Depth: each stage repeats ``ceil(n * depth_mult)`` times, except the first and the last
  stage, which stay at one block (``fix_first_last`` in timm, the README's "fix the stem and
  head").
- The expanded width is ``in_chs * e``; every in_chs is a multiple of 8, so timm's rounding
  of it to 8 gives the same network.
- TensorFlow "SAME" padding: a stride-2 conv pads ``k - 2`` pixels for even sizes, the
  extra one at the bottom / right (``same_padding=False`` pads symmetrically, as timm's
  non-TF ``efficientnet_lite0`` does). BN eps 1e-3, TensorFlow's default.
- The residual connects at stride 1 with in_chs == out_chs; dropout before the classifier
  is 0.2 / 0.2 / 0.3 / 0.3 / 0.3 (the README's builder).
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from pocketvision.layers import ClassifierHead, conv_norm_act, make_divisible
from pocketvision.layers.conv_norm_act import LayerFactory
from pocketvision.registry import Family, Paper, register_model


class MBConvStage(NamedTuple):
    e: int  # expansion ratio (the "6" of MBConv6)
    k: int  # depthwise kernel size
    c: int  # output channels at width 1.0 (Table 1's C_i)
    n: int  # repeats at depth 1.0 (Table 1's L_i)
    s: int  # stride of the first block (where Table 1's resolution halves)


# Tan & Le 2019, Table 1 (EfficientNet-B0): conv3x3/2 with 32 filters, these MBConv stages,
# then conv1x1 1280, pooling and FC. Lite drops the SE of every MBConv.
EFFICIENTNET_LITE_STEM = 32
EFFICIENTNET_B0_STAGES = (
    MBConvStage(1, 3, 16, 1, 1),
    MBConvStage(6, 3, 24, 2, 2),
    MBConvStage(6, 5, 40, 2, 2),
    MBConvStage(6, 3, 80, 3, 2),
    MBConvStage(6, 5, 112, 3, 1),
    MBConvStage(6, 5, 192, 4, 2),
    MBConvStage(6, 3, 320, 1, 1),
)
EFFICIENTNET_LITE_HEAD = 1280


def stage_depths(stages: tuple[MBConvStage, ...], depth_mult: float) -> list[int]:
    """Repeats per stage: ``ceil(n * depth_mult)``, the first and last stage kept as they are.

    >>> stage_depths(EFFICIENTNET_B0_STAGES, 1.8)  # lite4
    [1, 4, 4, 6, 6, 8, 1]
    """
    last = len(stages) - 1
    return [st.n if i in (0, last) else math.ceil(st.n * depth_mult) for i, st in enumerate(stages)]


class SamePad2d(nn.Module):
    """TensorFlow's "SAME" padding for a conv of ``kernel_size`` and ``stride``.

    Pads so the output is ``ceil(size / stride)``, splitting the total as ``(p // 2, p - p //
    2)``: the odd pixel goes to the bottom / right, where PyTorch's symmetric padding would
    put one on each side. Computed from the input's size, so any resolution works.
    """

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def _pad(self, size: int) -> tuple[int, int]:
        total = max((-(-size // self.stride) - 1) * self.stride + self.kernel_size - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._pad(x.shape[-2])
        left, right = self._pad(x.shape[-1])
        return F.pad(x, (left, right, top, bottom))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


def _pad_for(kernel_size: int, stride: int, same_padding: bool) -> tuple[nn.Module, int]:
    """(module before the conv, the conv's own padding): TF SAME is asymmetric only when
    strided; at stride 1 with an odd kernel it is the symmetric ``k // 2``."""
    if same_padding and stride > 1:
        return SamePad2d(kernel_size, stride), 0
    return nn.Identity(), kernel_size // 2


class MBConv(nn.Module):
    """Mobile inverted bottleneck without SE: 1x1 expand -> kxk depthwise -> 1x1 linear (+ x).

    At ``exp_ratio == 1`` the expand conv is left out (timm's DepthwiseSeparableConv).

    Args:
        in_chs: Input channels.
        out_chs: Output channels.
        kernel_size: Depthwise kernel size.
        stride: Stride of the depthwise conv.
        exp_ratio: Expansion ratio e.
        norm_layer: Called with a width.
        act_layer: Called with ``inplace=True`` (ReLU6 in Lite).
        same_padding: TensorFlow SAME padding for a strided depthwise conv.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int,
        stride: int,
        exp_ratio: int,
        *,
        norm_layer: LayerFactory,
        act_layer: LayerFactory,
        same_padding: bool,
    ) -> None:
        super().__init__()
        hidden = in_chs * exp_ratio
        self.use_residual = stride == 1 and in_chs == out_chs
        self.conv_pw: nn.Module = (
            conv_norm_act(in_chs, hidden, 1, norm_layer=norm_layer, act_layer=act_layer)
            if exp_ratio != 1
            else nn.Identity()
        )
        self.pad, padding = _pad_for(kernel_size, stride, same_padding)
        self.conv_dw = conv_norm_act(
            hidden, hidden, kernel_size, stride, padding=padding, groups=hidden,
            norm_layer=norm_layer, act_layer=act_layer,
        )  # fmt: skip
        self.conv_pwl = conv_norm_act(hidden, out_chs, 1, norm_layer=norm_layer, act_layer=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_pwl(self.conv_dw(self.pad(self.conv_pw(x))))
        return x + out if self.use_residual else out


class EfficientNetLite(nn.Module):
    """Stem conv (32), MBConv stages from a table scaled in width and depth, 1x1 conv (1280),
    pool, dropout, FC.

    Args:
        stages: Stage table; defaults to Table 1 (B0).
        num_classes: Classifier outputs.
        in_chans: Input channels.
        width_mult: Width multiplier of the stages; stem and head stay fixed.
        depth_mult: Depth multiplier of the stages between the first and the last.
        small_input: Stride-1 stem (total stride 16), so a 28x28 input ends in a 2x2 map.
        drop_rate: Dropout before the classifier.
        same_padding: TensorFlow SAME padding, as Google's checkpoints were trained (timm's
            ``tf_efficientnet_lite*``); False pads symmetrically (timm's
            ``efficientnet_lite0``, whose ``ra_in1k`` weights need it and ``bn_eps=1e-5``).
        bn_eps: BatchNorm epsilon (1e-3, TensorFlow's).
    """

    def __init__(
        self,
        stages: tuple[MBConvStage, ...] = EFFICIENTNET_B0_STAGES,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        small_input: bool = False,
        drop_rate: float = 0.2,
        same_padding: bool = True,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        norm = partial(nn.BatchNorm2d, eps=bn_eps)
        act = nn.ReLU6
        stride = 1 if small_input else 2
        self.stem_pad, padding = _pad_for(3, stride, same_padding)
        self.stem = conv_norm_act(
            in_chans, EFFICIENTNET_LITE_STEM, 3, stride, padding=padding, norm_layer=norm,
            act_layer=act,
        )  # fmt: skip
        blocks: list[nn.Module] = []
        in_chs = EFFICIENTNET_LITE_STEM
        for stage, n in zip(stages, stage_depths(stages, depth_mult), strict=True):
            out_chs = make_divisible(stage.c * width_mult)
            for j in range(n):
                blocks.append(
                    MBConv(
                        in_chs, out_chs, stage.k, stage.s if j == 0 else 1, stage.e,
                        norm_layer=norm, act_layer=act, same_padding=same_padding,
                    )
                )  # fmt: skip
                in_chs = out_chs
        self.blocks = nn.Sequential(*blocks)
        self.num_features = EFFICIENTNET_LITE_HEAD
        self.conv_head = conv_norm_act(in_chs, self.num_features, 1, norm_layer=norm, act_layer=act)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        # Convs as the TF reference: N(0, sqrt(2 / fan_out)), fan_out = k * k * out / groups.
        # The classifier as the other families, N(0, 0.01): TF's U(+-1 / sqrt(out)) is
        # +-0.32 for a 10-class head, whose first logits then span several units.
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
        x = self.stem(self.stem_pad(x))
        return self.conv_head(self.blocks(x))  # (N, 1280, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.head.reset(num_classes)


EFFICIENTNET_LITE = Family(
    name="EfficientNetLite",
    model=EfficientNetLite,
    paper=Paper(
        "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
        authors="Tan, Le",
        year=2019,
        arxiv="1905.11946",
    ),
    small_input=(
        "The 3x3 stem conv has stride 1 instead of 2 (total stride 16 instead of 32), so a "
        "28x28 input ends in a 2x2 map, not 1x1."
    ),
    first_conv="stem.0",
    classifier="head.fc",
    # drop_rate is fixed by each name (0.2 or 0.3), so it is no caller option
    options=("same_padding", "bn_eps"),
)


class LiteVariant(NamedTuple):
    width: float  # width_mult (the README builder's channel multiplier)
    depth: float  # depth_mult
    resolution: int  # train / eval resolution
    drop_rate: float  # dropout before the classifier
    params_m: float  # the README's "params" (M, rounded)
    madds: int  # the README's "MAdds" (rounded to 3 figures)
    top1: float  # the README's FP32 ImageNet top-1 (%)


_M = 1_000_000
# The lite README: the builder's (width, depth, resolution, dropout) and its table.
LITE_VARIANTS: dict[str, LiteVariant] = {
    "efficientnet_lite0": LiteVariant(1.0, 1.0, 224, 0.2, 4.7, 407 * _M, 75.1),
    "efficientnet_lite1": LiteVariant(1.0, 1.1, 240, 0.2, 5.4, 631 * _M, 76.7),
    "efficientnet_lite2": LiteVariant(1.1, 1.2, 260, 0.3, 6.1, 899 * _M, 77.6),
    "efficientnet_lite3": LiteVariant(1.2, 1.4, 280, 0.3, 8.2, 1440 * _M, 79.8),
    "efficientnet_lite4": LiteVariant(1.4, 1.8, 300, 0.3, 13.0, 2640 * _M, 81.5),
}

# Exact counts of this build (= timm's tf_efficientnet_lite*) at 1000 classes, and MACs at
# each variant's own resolution (conv + linear).
_COUNTS: dict[str, tuple[int, int]] = {
    "efficientnet_lite0": (4_652_008, 385 * _M),
    "efficientnet_lite1": (5_416_680, 600 * _M),
    "efficientnet_lite2": (6_092_072, 860 * _M),
    "efficientnet_lite3": (8_197_096, 1383 * _M),
    "efficientnet_lite4": (13_006_568, 2553 * _M),
}


def _readme_madds(variant: LiteVariant) -> str:
    """The README's MAdds as it prints them ("407M", "1.44B")."""
    m = variant.madds
    return f"{m / 1e9:g}B" if m >= 10**9 else f"{m / 1e6:g}M"


for _name, _v in LITE_VARIANTS.items():
    _params, _macs = _COUNTS[_name]
    register_model(
        replace(EFFICIENTNET_LITE, input_size=(3, _v.resolution, _v.resolution)),
        _name,
        {"depth_mult": _v.depth, "drop_rate": _v.drop_rate},
        width_mult=_v.width,
        params=_params,
        macs=_macs,
        top1=_v.top1,
        table="Table 1 (B0 body); tensorflow/tpu efficientnet/lite README table",
        note=f'The lite README prints "{_v.params_m}M" params and "{_readme_madds(_v)}" '
        "MAdds: TF's profiler count, about 3 ops per conv output (BN, ReLU6) above the conv + "
        "FC MACs recorded here (see docs/models.md). Params equal timm's tf_efficientnet_lite.",
    )
