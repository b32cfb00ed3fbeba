"""MobileOne: a plain conv net at inference, over-parameterised branches in training.

Vasu, Gabriel, Zhu, Tuzel, Ranjan. "MobileOne: An Improved One millisecond Mobile Backbone".
CVPR 2023, arXiv:2206.04040. Reproduces Table 7 (the architecture and the S0-S4 multipliers)
and Table 9's params, FLOPs and top-1. timm's ``mobileone_s0`` .. ``_s4`` (byobnet.py) are the
reference implementation: the same function, tensor for tensor (see
``pocketvision.weights.convert.timm_mobileone``), so its checkpoints of Apple's weights load.

The details that decide the counts:

- Every MobileOne block of Table 7 is two blocks of Fig. 3: a 3x3 depthwise one, then a 1x1
  pointwise one. Each is a sum of ``k`` conv-BN branches (k = 4 for S0, 1 otherwise), a 1x1
  conv-BN "scale" branch (only where the kernel is 3x3) and a BN-only skip (only at stride 1
  with in == out), then SE (S4's last 6 blocks) and ReLU.
- The stem is one such 3x3 block at stride 2 with a single branch, 64 * min(1, alpha_1) wide.
- Params and MACs of the paper are those of the inference form, after
  :meth:`MobileOne.reparameterize` folds every block into one conv with bias (what
  ``pocketvision.profile`` counts); the train form (what ``parameters()`` holds) is larger.
- SE squeezes C -> C / 16 with ReLU and a sigmoid gate; BN eps 1e-5; no dropout by default.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from pocketvision.layers import ClassifierHead, SqueezeExcite, conv_norm_act
from pocketvision.layers.conv_norm_act import LayerFactory
from pocketvision.layers.reparameterize import fuse_conv_bn, identity_kernel
from pocketvision.registry import Family, Paper, register_model


class MobileOneStage(NamedTuple):
    c: int  # output channels before the width multiplier ("# Channels")
    n: int  # MobileOne blocks ("# Blocks"), each a depthwise and a pointwise block
    s: int  # stride of the first block
    alpha: int  # which multiplier alpha_1 .. alpha_4 scales c
    se: bool  # SE-ReLU in the variants that use SE ("SE-ReLU" column, S4 only)


class MobileOneVariant(NamedTuple):
    alphas: tuple[float, float, float, float]  # width multipliers alpha_1 .. alpha_4
    k: int  # over-parameterisation factor: conv-BN branches per block
    se: bool  # whether the stages marked ``se`` get squeeze-and-excite


# Vasu et al. 2023, Table 7: stage 1 is the stem (64 * min(1, alpha_1), stride 2); stages 2-6
# are these rows; then a global average pool and the linear classifier.
MOBILEONE_STAGES = (
    MobileOneStage(64, 2, 2, 1, False),
    MobileOneStage(128, 8, 2, 2, False),
    MobileOneStage(256, 5, 2, 3, False),
    MobileOneStage(256, 5, 1, 3, True),
    MobileOneStage(512, 1, 2, 4, True),
)
MOBILEONE_STEM = 64
# Table 7's multipliers and k.
MOBILEONE_S0 = MobileOneVariant((0.75, 1.0, 1.0, 2.0), k=4, se=False)
MOBILEONE_S1 = MobileOneVariant((1.5, 1.5, 2.0, 2.5), k=1, se=False)
MOBILEONE_S2 = MobileOneVariant((1.5, 2.0, 2.5, 4.0), k=1, se=False)
MOBILEONE_S3 = MobileOneVariant((2.0, 2.5, 3.0, 4.0), k=1, se=False)
MOBILEONE_S4 = MobileOneVariant((3.0, 3.5, 3.5, 4.0), k=1, se=True)


def _conv_bn(branch: nn.Module) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    conv, bn = branch[0], branch[1]  # type: ignore[index]
    assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
    return conv, bn


class MobileOneBlock(nn.Module):
    """Fig. 3: sum of k kxk conv-BN branches, a 1x1 conv-BN branch and a BN skip; SE; ReLU.

    Args:
        in_chs: Input channels.
        out_chs: Output channels.
        kernel_size: 3 (the depthwise blocks and the stem) or 1 (the pointwise blocks, which
            then have no separate 1x1 "scale" branch).
        stride: Stride of every branch.
        groups: ``in_chs`` for the depthwise blocks, 1 otherwise.
        k: Number of kxk conv-BN branches.
        se_layer: Called with ``out_chs``; applied to the sum, before the activation.
        act_layer: The activation (ReLU in the paper).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int,
        stride: int = 1,
        *,
        groups: int = 1,
        k: int = 1,
        se_layer: LayerFactory | None = None,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        branch = partial(conv_norm_act, in_chs, out_chs, stride=stride, groups=groups)
        self.conv_kxk = nn.ModuleList([branch(kernel_size, act_layer=None) for _ in range(k)])
        self.conv_scale = branch(1, act_layer=None) if kernel_size > 1 else None
        use_skip = stride == 1 and in_chs == out_chs
        self.identity = nn.BatchNorm2d(out_chs) if use_skip else None
        self.reparam_conv: nn.Conv2d | None = None  # the inference form, after reparameterize()
        self.se = se_layer(out_chs) if se_layer is not None else nn.Identity()
        self.act = act_layer(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam_conv is not None:
            return self.act(self.se(self.reparam_conv(x)))
        # summed in timm's order (scale, kxk branches, skip), so outputs match it bit for bit
        branches = [self.conv_scale(x)] if self.conv_scale is not None else []
        branches += [conv(x) for conv in self.conv_kxk]
        if self.identity is not None:
            branches.append(self.identity(x))
        out = branches[0]
        for y in branches[1:]:
            out = out + y
        return self.act(self.se(out))

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold every branch into ``reparam_conv`` (uses BN running statistics: eval mode).

        Afterwards the block computes its eval-mode function with one conv; the branches are
        gone, so this cannot be undone. A second call does nothing.
        """
        if self.reparam_conv is not None:
            return
        first, _ = _conv_bn(self.conv_kxk[0])
        size, pad = first.kernel_size[0], first.kernel_size[0] // 2  # square, odd kernels
        pairs = [fuse_conv_bn(conv.weight, bn) for conv, bn in map(_conv_bn, self.conv_kxk)]
        if self.conv_scale is not None:
            conv, bn = _conv_bn(self.conv_scale)
            kernel, bias = fuse_conv_bn(conv.weight, bn)
            pairs.append((nn.functional.pad(kernel, [pad] * 4), bias))  # 1x1 at the centre
        if self.identity is not None:
            eye = identity_kernel(first.out_channels, first.groups, size, first.weight)
            pairs.append(fuse_conv_bn(eye, self.identity))
        fused = nn.Conv2d(
            first.in_channels,
            first.out_channels,
            size,
            first.stride[0],
            pad,
            groups=first.groups,
            bias=True,
            device=first.weight.device,
            dtype=first.weight.dtype,
        )
        fused.weight.copy_(torch.stack([w for w, _ in pairs]).sum(0))
        assert fused.bias is not None
        fused.bias.copy_(torch.stack([b for _, b in pairs]).sum(0))
        self.reparam_conv = fused
        self.conv_kxk = nn.ModuleList()
        self.conv_scale = None
        self.identity = None


class MobileOne(nn.Module):
    """Stem block, the Table 7 stages (depthwise + pointwise blocks), pool, linear.

    Args:
        variant: Multipliers, k and SE: ``MOBILEONE_S0`` .. ``MOBILEONE_S4``.
        stages: Stage table (``MOBILEONE_STAGES``, Table 7).
        num_classes: Classifier outputs.
        in_chans: Input channels.
        small_input: Stride-1 stem (total stride 16), so a 28x28 input ends in a 2x2 map.
        drop_rate: Dropout before the classifier (0 in timm's and Apple's code).
    """

    def __init__(
        self,
        variant: MobileOneVariant = MOBILEONE_S0,
        stages: tuple[MobileOneStage, ...] = MOBILEONE_STAGES,
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        stem_chs = int(MOBILEONE_STEM * min(1.0, variant.alphas[0]))
        self.stem = MobileOneBlock(in_chans, stem_chs, 3, 1 if small_input else 2)
        body: list[nn.Sequential] = []
        in_chs = stem_chs
        for row in stages:
            out_chs = int(row.c * variant.alphas[row.alpha - 1])
            se = partial(SqueezeExcite, reduction=16) if variant.se and row.se else None
            blocks: list[MobileOneBlock] = []
            for i in range(row.n):
                stride = row.s if i == 0 else 1
                dw = MobileOneBlock(
                    in_chs, in_chs, 3, stride, groups=in_chs, k=variant.k, se_layer=se
                )
                blocks += [dw, MobileOneBlock(in_chs, out_chs, 1, k=variant.k, se_layer=se)]
                in_chs = out_chs
            body.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*body)
        self.num_features = in_chs
        self.head = ClassifierHead(in_chs, num_classes, drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        # timm's ByobNet initialisation: He normal over the grouped fan-out
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
        return self.stages(self.stem(x))  # (N, 512 * alpha_4, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.head.reset(num_classes)

    def reparameterize(self) -> MobileOne:
        """Fold every block into one conv, in place (Sec. 3.1); returns the model.

        The result computes this model's eval-mode function with one conv per block. Export,
        profile and serve apply it to a copy (``pocketvision.layers.deploy_form``).
        """
        for module in self.modules():
            if isinstance(module, MobileOneBlock):
                module.reparameterize()
        return self

    fuse = reparameterize


MOBILEONE = Family(
    name="MobileOne",
    model=MobileOne,
    paper=Paper(
        "MobileOne: An Improved One millisecond Mobile Backbone",
        authors="Vasu et al.",
        year=2023,
        arxiv="2206.04040",
    ),
    small_input=(
        "The stem block has stride 1 instead of 2 (total stride 16 instead of 32), so a "
        "28x28 input ends in a 2x2 map, not 1x1."
    ),
    first_conv="stem",  # its kxk and 1x1 branches both see the input
    classifier="head.fc",
    options=("drop_rate",),
)

_M = 1_000_000
_NOTE = (
    "Params and MACs are the inference form's (after reparameterize()), as the paper counts "
    "them; params are timm's exact count, the paper prints {}M. The train form holds {:,} "
    "params and {}M MACs."
)

register_model(
    MOBILEONE,
    "mobileone_s0",
    {"variant": MOBILEONE_S0},
    params=2_078_504,
    macs=275 * _M,
    top1=71.4,
    table="Tables 7, 9",
    note=_NOTE.format(2.1, 5_293_272, 1052),
)
register_model(
    MOBILEONE,
    "mobileone_s1",
    {"variant": MOBILEONE_S1},
    params=4_764_840,
    macs=825 * _M,
    top1=75.9,
    table="Tables 7, 9",
    note=_NOTE.format(4.8, 4_825_192, 830),
)
register_model(
    MOBILEONE,
    "mobileone_s2",
    {"variant": MOBILEONE_S2},
    params=7_808_168,
    macs=1299 * _M,
    top1=77.4,
    table="Tables 7, 9",
    note=_NOTE.format(7.8, 7_884_648, 1304),
)
register_model(
    MOBILEONE,
    "mobileone_s3",
    {"variant": MOBILEONE_S3},
    params=10_078_312,
    macs=1896 * _M,
    top1=78.1,
    table="Tables 7, 9",
    note=_NOTE.format(10.1, 10_170_600, 1902),
)
register_model(
    MOBILEONE,
    "mobileone_s4",
    {"variant": MOBILEONE_S4},
    params=14_838_352,
    macs=2978 * _M,
    top1=79.4,
    table="Tables 7, 9",
    note=_NOTE.format(14.8, 14_951_248, 2987),
)
