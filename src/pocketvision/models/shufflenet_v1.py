"""ShuffleNet v1: pointwise group convolutions and channel shuffle.

Zhang, Zhou, Lin, Sun. "ShuffleNet: An Extremely Efficient Convolutional Neural Network for
Mobile Devices". CVPR 2018, arXiv:1707.01083. Reproduces Table 1 (the 1x networks for
g = 1, 2, 3, 4, 8) and the scaled g = 3 networks of Tables 2 and 5 (0.5x, 1.5x, 2x), with
the scaled models' conv1 widths taken from the reference release (megvii-model/
ShuffleNet-Series, ShuffleNetV1): conv1 12 for 0.5x, 24 for 1x and 1.5x, 48 for 2x.

Architecture (Table 1): conv1 3x3/2 (24) -> max-pool 3x3/2 -> Stages 2, 3, 4 of 4, 8, 4
ShuffleNet units, the first of each at stride 2 -> global pool -> FC. A unit (Fig. 2):

    1x1 GConv (g groups, bottleneck = out/4) -> BN -> ReLU -> channel shuffle
    -> 3x3 depthwise (stride s) -> BN                      (no ReLU after the depthwise)
    -> 1x1 GConv (g groups) -> BN [-> SE]                  (the residual branch)
    stride 1: ReLU(x + branch)
    stride 2: ReLU(concat(avgpool3x3/2(x), branch)), the branch giving out - in channels

Stage 2's first 1x1 is not grouped: its input has only 24 channels (Sec. 3.3).

Params are counted here, exact (1000 classes, biased FC, 224 px); MACs are the paper's, which
our counts match within 2%. The paper gives no parameter counts for the scaled models; theirs
are what the rules in :func:`shufflenet_v1_stages` build, and they round to the release's
published figures (the release's FC has no bias: 480 / 1440 / 1920 fewer). Each variant's
numbers are written once, in its registration at the end of this file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from pocketvision.layers import ChannelShuffle, ClassifierHead, conv_norm_act, make_divisible
from pocketvision.registry import Family, Paper, register_model

SELayer = Callable[[int], nn.Module]


class ShuffleStage(NamedTuple):
    c: int  # output channels of every unit in the stage
    n: int  # repeats; the first unit has stride s and concatenates its shortcut
    s: int  # stride of the first unit


# Zhang et al. 2017, Table 1: output channels of Stages 2, 3, 4 at 1x, by number of groups g.
STAGE_CHANNELS: dict[int, tuple[int, int, int]] = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
STAGE_REPEATS = (4, 8, 4)  # Table 1, "Repeat" column
STEM_CHANNELS = 24  # conv1 at 1x


def shufflenet_v1_stages(
    groups: int, width_mult: float = 1.0
) -> tuple[int, tuple[ShuffleStage, ...]]:
    """conv1 width and the stage table for ``groups`` at ``width_mult``.

    Stage widths are Table 1's times ``width_mult``, rounded by :func:`make_divisible` to a
    multiple of 4g, so the bottleneck (out/4) splits into g groups. For every width the paper
    or the reference release lists (0.25x, 0.5x, 1x, 1.5x, 2x of g = 3 and g = 8) the product
    already is such a multiple, so nothing is rounded there.

    conv1 follows the reference release: 12 below 1x, 24 from 1x to below 2x, 48 at 2x (and
    doubling at every further power of two). Below 0.5x it stays 12: the paper's 13M MACs at
    0.25x (Table 2) needs that (halving it to 6 gives 11.0M). It is rounded up to a multiple
    of g so the first unit's branch (out - in) splits into g groups: the release's 16 for g = 8
    at 0.5x.

    Raises:
        ValueError: ``groups`` is not one of Table 1's (1, 2, 3, 4, 8), or width_mult <= 0.
    """
    if groups not in STAGE_CHANNELS:
        raise ValueError(f"groups must be one of {sorted(STAGE_CHANNELS)} (Table 1), got {groups}")
    if not width_mult > 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    stem = STEM_CHANNELS * 2 ** math.floor(math.log2(width_mult)) if width_mult >= 1 else 12
    stem_chs = groups * math.ceil(stem / groups)
    stages = tuple(
        ShuffleStage(make_divisible(c * width_mult, 4 * groups), n, 2)
        for c, n in zip(STAGE_CHANNELS[groups], STAGE_REPEATS, strict=True)
    )
    return stem_chs, stages


class ShuffleUnit(nn.Module):
    """One ShuffleNet unit (Fig. 2b at stride 1, Fig. 2c at stride 2).

    Args:
        in_chs: Input channels.
        out_chs: Output channels (the concatenation's, at stride 2).
        stride: 1 (residual add) or 2 (concat with an average-pooled shortcut).
        groups: g of the two pointwise group convolutions.
        group_first: False for Stage 2's first unit, whose 1x1 sees only conv1's channels.
        se_layer: Called with the branch's channels; applied after its last BN (SENet).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int,
        groups: int,
        group_first: bool = True,
        se_layer: SELayer | None = None,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if stride == 1 and in_chs != out_chs:
            raise ValueError(f"a stride-1 unit adds its input: in_chs {in_chs} != {out_chs}")
        self.stride = stride
        mid_chs = out_chs // 4
        branch_chs = out_chs - in_chs if stride == 2 else out_chs
        self.conv1 = conv_norm_act(in_chs, mid_chs, 1, groups=groups if group_first else 1)
        # The reference shuffles in every unit when g > 1, the ungrouped first one included.
        self.shuffle = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.conv2 = conv_norm_act(mid_chs, mid_chs, 3, stride, groups=mid_chs, act_layer=None)
        self.conv3 = conv_norm_act(mid_chs, branch_chs, 1, groups=groups, act_layer=None)
        self.se = se_layer(branch_chs) if se_layer is not None else nn.Identity()
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.se(self.conv3(self.conv2(self.shuffle(self.conv1(x)))))
        if self.stride == 2:
            return self.act(torch.cat([self.shortcut(x), branch], 1))  # (N, out, H/2, W/2)
        return self.act(x + branch)


class ShuffleNetV1(nn.Module):
    """ShuffleNet v1 from Table 1's stage table for g groups at a width multiplier.

    Args:
        groups: g (1, 2, 3, 4 or 8).
        width_mult: Channel multiplier s (Sec. 4.1.1's "ShuffleNet s x").
        num_classes: Classifier outputs.
        in_chans: Input channels.
        small_input: conv1 at stride 1 and no max-pool, for 28-64 px images (4x less
            downsampling: 28x28 reaches Stage 4 at 4x4 instead of 1x1).
        se_layer: Squeeze-and-excitation (or any module factory taking channels) on each
            unit's branch after its last BN, before the add or concat; None for none.
        drop_rate: Dropout before the classifier (the paper uses none).
    """

    def __init__(
        self,
        groups: int = 3,
        width_mult: float = 1.0,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
        se_layer: SELayer | None = None,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        stem_chs, stages = shufflenet_v1_stages(groups, width_mult)
        self.groups = groups
        self.width_mult = width_mult
        self.stem = nn.Sequential(
            conv_norm_act(in_chans, stem_chs, 3, stride=1 if small_input else 2),
            nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1),
        )
        units: list[nn.Module] = []
        in_chs = stem_chs
        for i, stage in enumerate(stages):
            for j in range(stage.n):
                stride = stage.s if j == 0 else 1
                group_first = not (i == 0 and j == 0)
                units.append(ShuffleUnit(in_chs, stage.c, stride, groups, group_first, se_layer))
                in_chs = stage.c
        self.stages = nn.Sequential(*units)
        self.num_features = in_chs
        self.head = ClassifierHead(in_chs, num_classes, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))  # (N, num_features, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.head.reset(num_classes)


def shufflenet_v1(
    *,
    groups: int = 3,
    width_mult: float = 1.0,
    num_classes: int = 1000,
    in_chans: int = 3,
    small_input: bool = False,
) -> ShuffleNetV1:
    """ShuffleNet v1 for any g of Table 1 and any width (see :func:`shufflenet_v1_stages`)."""
    return ShuffleNetV1(
        groups, width_mult, num_classes=num_classes, in_chans=in_chans, small_input=small_input
    )


SHUFFLENET_V1 = Family(
    name="ShuffleNetV1",
    model=ShuffleNetV1,
    paper=Paper(
        "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices",
        authors="Zhang, Zhou, Lin, Sun",
        year=2017,
        arxiv="1707.01083",
    ),
    small_input=(
        "conv1 at stride 1 and no max-pool (4x less downsampling; 28 px reach Stage 4 at 4x4)."
    ),
    first_conv="stem.0.0",
    classifier="head.fc",
)
_M = 1_000_000

# Table 1's 1x networks, one per g: (name, g, params, MACs, top-1 of Table 2)
for name, groups, params, macs, top1 in (
    ("shufflenet_v1_g1_100", 1, 1_531_936, 143 * _M, 66.4),
    ("shufflenet_v1_g2_100", 2, 1_733_848, 140 * _M, 67.3),
    ("shufflenet_v1_g3_100", 3, 1_865_728, 137 * _M, 67.4),
    ("shufflenet_v1_g4_100", 4, 1_968_344, 133 * _M, 67.2),
    ("shufflenet_v1_g8_100", 8, 2_434_768, 137 * _M, 67.6),
):
    register_model(
        SHUFFLENET_V1,
        name,
        {"groups": groups},
        width_mult=1.0,
        params=params,
        macs=macs,
        top1=top1,
        table="Table 1 (complexity), Table 2 (top-1)",
    )

register_model(
    SHUFFLENET_V1,
    "shufflenet_v1_g3_050",
    {"groups": 3},
    width_mult=0.5,
    params=718_324,
    macs=38 * _M,
    top1=56.8,
    table="Table 2 (conv1 12, release)",
    note="The release prints 38M MACs and 0.7M params (conv1 12, stages 120/240/480).",
)
register_model(
    SHUFFLENET_V1,
    "shufflenet_v1_g3_150",
    {"groups": 3},
    width_mult=1.5,
    params=3_442_168,
    macs=292 * _M,
    top1=71.5,
    table="Table 5 (conv1 24, release)",
    note="The release prints 292M MACs and 3.4M params (conv1 24, stages 360/720/1440).",
)
register_model(
    SHUFFLENET_V1,
    "shufflenet_v1_g3_200",
    {"groups": 3},
    width_mult=2.0,
    params=5_450_776,
    macs=524 * _M,
    top1=73.7,
    table="Table 5 (conv1 48, release)",
    note="The release prints 524M MACs and 5.4M params (conv1 48, stages 480/960/1920).",
)
