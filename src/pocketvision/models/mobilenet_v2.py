"""MobileNet v2: inverted residuals with linear bottlenecks.

Sandler, Howard, Zhu, Zhmoginov, Chen. "MobileNetV2: Inverted Residuals and Linear
Bottlenecks". CVPR 2018, arXiv:1801.04381. Reproduces Table 2 (the body), Table 4 (1.0 and
1.4 at 224 px) and the reference release's grid of widths 1.4 / 1.0 / 0.75 / 0.5 / 0.35 at
224 / 192 / 160 / 128 / 96 px (TF-slim ``nets/mobilenet/README.md``), the numbers behind
Fig. 5.

The details that decide the counts:

- Every width is ``make_divisible(c * width_mult, 8)``, which never rounds down by more than
  10%, the first conv included: at 0.35 the stem is 16, not 8 (11.2 rounded down would lose
  29%).
- The last 1x1 conv (1280) is not thinned for widths below 1 (Sec. 6.1: "with the exception
  of the last convolutional layer"; the release's ``finegrain_classification_mode``) and
  grows to 1792 at 1.4.
- The expanded width is ``round(in_chs * t)``. The reference code rounds it to a multiple of
  8 instead; both give the same network because every in_chs is a multiple of 8 (t = 6) or
  the expansion is skipped (t = 1), and a test checks this over a sweep of widths.
- The t = 1 block has no expansion conv; the projection is linear (BN, no activation); the
  residual connects only at stride 1 with in_chs == out_chs (10 of the 17 blocks).
- ReLU6 after every other conv, dropout 0.2 before the classifier, no conv bias.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from pocketvision.layers import ClassifierHead, conv_norm_act, make_divisible
from pocketvision.registry import Family, Paper, register_model


class IRStage(NamedTuple):
    t: int  # expansion factor
    c: int  # output channels at width 1.0
    n: int  # repeats
    s: int  # stride of the first block


# Sandler et al. 2018, Table 2: conv2d 3x3/2 with 32 filters, these bottleneck stages, then a
# 1x1 conv with 1280 filters, global average pool and the classifier.
MOBILENET_V2_STEM = 32
MOBILENET_V2_STAGES = (
    IRStage(1, 16, 1, 1),
    IRStage(6, 24, 2, 2),
    IRStage(6, 32, 3, 2),
    IRStage(6, 64, 4, 2),
    IRStage(6, 96, 3, 1),
    IRStage(6, 160, 3, 2),
    IRStage(6, 320, 1, 1),
)
MOBILENET_V2_LAST = 1280


class InvertedResidual(nn.Module):
    """Table 1: 1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection (+ x).

    Args:
        in_chs: Input channels.
        out_chs: Output channels.
        stride: Stride of the depthwise conv.
        exp_ratio: Expansion factor t; at t = 1 the expand conv is left out.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, exp_ratio: int) -> None:
        super().__init__()
        hidden = round(in_chs * exp_ratio)
        self.use_residual = stride == 1 and in_chs == out_chs
        self.conv_pw: nn.Module = (
            conv_norm_act(in_chs, hidden, 1, act_layer=nn.ReLU6)
            if exp_ratio != 1
            else nn.Identity()
        )
        self.conv_dw = conv_norm_act(hidden, hidden, 3, stride, groups=hidden, act_layer=nn.ReLU6)
        self.conv_pwl = conv_norm_act(hidden, out_chs, 1, act_layer=None)  # linear bottleneck

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_pwl(self.conv_dw(self.conv_pw(x)))
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """Stem conv, inverted-residual stages from a table, 1x1 conv, pool, dropout, FC.

    Args:
        stages: Stage table; defaults to Table 2.
        num_classes: Classifier outputs.
        in_chans: Input channels.
        width_mult: Width multiplier; the last conv is never thinned below 1280.
        small_input: Stride-1 stem (total stride 16 instead of 32), so 28x28 inputs end in a
            2x2 map. Also keeping the 24-channel stage at stride 1 (total stride 8, as CIFAR
            ports do) costs 3.4x the MACs and trained no better on Fashion-MNIST (see
            docs/models.md).
        drop_rate: Dropout before the classifier (0.2 in the reference training).
    """

    def __init__(
        self,
        stages: tuple[IRStage, ...] = MOBILENET_V2_STAGES,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        small_input: bool = False,
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        stem_chs = make_divisible(MOBILENET_V2_STEM * width_mult)
        self.stem = conv_norm_act(
            in_chans, stem_chs, 3, stride=1 if small_input else 2, act_layer=nn.ReLU6
        )
        blocks: list[nn.Module] = []
        in_chs = stem_chs
        for stage in stages:
            out_chs = make_divisible(stage.c * width_mult)
            for j in range(stage.n):
                stride = stage.s if j == 0 else 1
                blocks.append(InvertedResidual(in_chs, out_chs, stride, stage.t))
                in_chs = out_chs
        self.blocks = nn.Sequential(*blocks)
        self.num_features = make_divisible(MOBILENET_V2_LAST * max(1.0, width_mult))
        self.conv_head = conv_norm_act(in_chs, self.num_features, 1, act_layer=nn.ReLU6)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_head(self.blocks(self.stem(x)))  # (N, 1280, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.head.reset(num_classes)


MOBILENET_V2 = Family(
    name="MobileNetV2",
    model=MobileNetV2,
    paper=Paper(
        "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
        authors="Sandler, Howard, Zhu, Zhmoginov, Chen",
        year=2018,
        arxiv="1801.04381",
    ),
    small_input=(
        "The 3x3 stem conv has stride 1 instead of 2 (total stride 16 instead of 32), so a "
        "28x28 input ends in a 2x2 map, not 1x1."
    ),
    first_conv="stem.0",
    classifier="head.fc",
    options=("drop_rate",),
)

# The reference release's table (TF-slim nets/mobilenet/README.md): million MACs per
# (width, resolution). It truncates: every entry equals int(MACs / 1e6) of this build. Where
# truncation alone puts the figure more than 2% below the count (11M for 11.93M), the entry
# is left out of ModelInfo.macs_at and tests hold it to the truncation rule instead.
RELEASE_MACS_M: dict[tuple[float, int], int] = {
    (1.4, 224): 582,
    (1.0, 224): 300, (1.0, 192): 221, (1.0, 160): 154, (1.0, 128): 99, (1.0, 96): 56,
    (0.75, 224): 209, (0.75, 192): 153, (0.75, 160): 107, (0.75, 128): 69, (0.75, 96): 39,
    (0.5, 224): 97, (0.5, 192): 71, (0.5, 160): 50, (0.5, 128): 32, (0.5, 96): 18,
    (0.35, 224): 59, (0.35, 192): 43, (0.35, 160): 30, (0.35, 128): 20, (0.35, 96): 11,
}  # fmt: skip

# The release's "Million Parameters": conv and FC weights only (no BN parameters), with
# 1001 classes (ImageNet plus background).
RELEASE_PARAMS_M: dict[float, float] = {1.4: 6.06, 1.0: 3.47, 0.75: 2.61, 0.5: 1.95, 0.35: 1.66}


def _release(width: float) -> str:
    """The release's weights-only count for ``width`` (from RELEASE_PARAMS_M), as a note."""
    return f'Reference release: "{RELEASE_PARAMS_M[width]}" M weights (no BN, 1001 classes).'


_M = 1_000_000
_FIG5 = "Table 2, Fig. 5; figures from the reference release"

register_model(
    MOBILENET_V2,
    "mobilenet_v2_140",
    width_mult=1.4,
    params=6_108_776,
    macs=585 * _M,
    top1=74.7,
    macs_at=(),  # the release gives 1.4 only at 224
    table="Tables 2, 4",
    note=f"{_release(1.4)} It prints {RELEASE_MACS_M[1.4, 224]}M MACs. Table 4's "
    '"6.9M" params fits no count of this network.',
)
register_model(
    MOBILENET_V2,
    "mobilenet_v2_100",
    width_mult=1.0,
    params=3_504_872,
    macs=300 * _M,
    top1=72.0,
    macs_at=((192, 221 * _M), (160, 154 * _M), (128, 99 * _M), (96, 56 * _M)),
    table="Tables 2, 4; 192-96 px from the reference release",
    note=f'{_release(1.0)} Table 4\'s "3.4M" is 3,472,041 such weights, truncated.',
)
register_model(
    MOBILENET_V2,
    "mobilenet_v2_075",
    width_mult=0.75,
    params=2_636_424,
    macs=209 * _M,
    top1=69.8,
    macs_at=((192, 153 * _M), (160, 107 * _M), (128, 69 * _M), (96, 39 * _M)),
    table=_FIG5,
    note=_release(0.75),
)
register_model(
    MOBILENET_V2,
    "mobilenet_v2_050",
    width_mult=0.5,
    params=1_968_680,
    macs=97 * _M,
    top1=65.4,
    # 96 px (18M, truncated from 18.9M) is checked against the release in the tests
    macs_at=((192, 71 * _M), (160, 50 * _M), (128, 32 * _M)),
    table=_FIG5,
    note=_release(0.5),
)
register_model(
    MOBILENET_V2,
    "mobilenet_v2_035",
    width_mult=0.35,
    params=1_677_128,
    macs=59 * _M,
    top1=60.3,
    # 192, 160 and 96 px (43M, 30M, 11M) are truncated by more than 2%; the tests hold
    # them to the release
    macs_at=((128, 20 * _M),),
    table=_FIG5,
    note=f"{_release(0.35)} The stem is 16 wide, not 8.",
)
