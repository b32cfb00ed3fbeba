"""MobileNet v3: NAS-found inverted residuals with SE, hard-swish and a cheaper head.

Howard, Sandler, Chu, Chen, Chen, Tan, Wang, Zhu, Pang, Vasudevan, Le, Adam. "Searching for
MobileNetV3". ICCV 2019, arXiv:1905.02244. Reproduces Table 1 (Large), Table 2 (Small) and
the 1.0 / 0.75 rows of Table 3. torchvision's ``mobilenet_v3_large`` / ``_small`` are the
reference implementation: module order and names map one to one onto theirs (see
:func:`torchvision_key`), so its checkpoints load by renaming keys.

The details that decide the counts:

- Every width, the expanded ("exp size") widths included, is ``make_divisible(c * w, 8)``;
  the 16-wide stem and the last 1x1 of the head (1280 Large, 1024 Small) are scaled too, as
  in torchvision.
- SE (Sec. 5.3) squeezes the expanded width to ``make_divisible(exp / 4, 8)`` with a ReLU,
  gates with hard-sigmoid, and sits after the depthwise conv.
- The expand conv is left out where ``exp == in`` (the first bneck of Large and of Small).
- The head (Sec. 5.1, Fig. 5): 1x1 conv to 6 x the last width with BN and hard-swish, pool,
  then a 1x1 "conv" without BN (a Linear) to 1280 / 1024 with hard-swish, dropout 0.2, FC.
- BN eps 1e-3 (torchvision's; matters for loading its weights, not for the counts).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from pocketvision.layers import SqueezeExcite, conv_norm_act, make_divisible
from pocketvision.registry import Family, Paper, register_model


class BneckRow(NamedTuple):
    k: int  # depthwise kernel size
    exp: int  # expanded width ("exp size") at width 1.0
    c: int  # output channels ("#out") at width 1.0
    se: bool  # squeeze-and-excite after the depthwise conv
    hs: bool  # hard-swish ("HS") rather than ReLU ("RE")
    s: int  # stride of the depthwise conv


# Howard et al. 2019, Table 1 (Large): conv2d 3x3/2 with 16 filters (HS), these bnecks, then
# conv2d 1x1 960 (HS), pool, 1x1 1280 without BN (HS), 1x1 classifier.
MOBILENET_V3_LARGE = (
    BneckRow(3, 16, 16, False, False, 1),
    BneckRow(3, 64, 24, False, False, 2),
    BneckRow(3, 72, 24, False, False, 1),
    BneckRow(5, 72, 40, True, False, 2),
    BneckRow(5, 120, 40, True, False, 1),
    BneckRow(5, 120, 40, True, False, 1),
    BneckRow(3, 240, 80, False, True, 2),
    BneckRow(3, 200, 80, False, True, 1),
    BneckRow(3, 184, 80, False, True, 1),
    BneckRow(3, 184, 80, False, True, 1),
    BneckRow(3, 480, 112, True, True, 1),
    BneckRow(3, 672, 112, True, True, 1),
    BneckRow(5, 672, 160, True, True, 2),
    BneckRow(5, 960, 160, True, True, 1),
    BneckRow(5, 960, 160, True, True, 1),
)
# Table 2 (Small): the same stem, these bnecks, conv2d 1x1 576 (SE in the paper's table,
# HS), pool, 1x1 1024 without BN (HS), classifier. torchvision (and the TF release) put no
# SE on the 576-wide conv; we follow the reference.
MOBILENET_V3_SMALL = (
    BneckRow(3, 16, 16, True, False, 2),
    BneckRow(3, 72, 24, False, False, 2),
    BneckRow(3, 88, 24, False, False, 1),
    BneckRow(5, 96, 40, True, True, 2),
    BneckRow(5, 240, 40, True, True, 1),
    BneckRow(5, 240, 40, True, True, 1),
    BneckRow(5, 120, 48, True, True, 1),
    BneckRow(5, 144, 48, True, True, 1),
    BneckRow(5, 288, 96, True, True, 2),
    BneckRow(5, 576, 96, True, True, 1),
    BneckRow(5, 576, 96, True, True, 1),
)
MOBILENET_V3_STEM = 16
HEAD_HIDDEN = {MOBILENET_V3_LARGE: 1280, MOBILENET_V3_SMALL: 1024}

_norm = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)  # torchvision's


class InvertedResidual(nn.Module):
    """Fig. 4: 1x1 expand -> kxk depthwise -> SE (hard-sigmoid) -> 1x1 linear (+ x).

    ``block`` holds the layers in torchvision's order and numbering.
    """

    def __init__(self, in_chs: int, row: BneckRow, width_mult: float) -> None:
        super().__init__()
        exp = make_divisible(row.exp * width_mult)
        out_chs = make_divisible(row.c * width_mult)
        act = nn.Hardswish if row.hs else nn.ReLU
        self.use_residual = row.s == 1 and in_chs == out_chs
        layers: list[nn.Module] = []
        if exp != in_chs:
            layers.append(conv_norm_act(in_chs, exp, 1, norm_layer=_norm, act_layer=act))
        layers.append(
            conv_norm_act(exp, exp, row.k, row.s, groups=exp, norm_layer=_norm, act_layer=act)
        )
        if row.se:
            hidden = make_divisible(exp // 4)
            layers.append(SqueezeExcite(exp, hidden_chs=hidden, gate_layer=nn.Hardsigmoid))
        layers.append(conv_norm_act(exp, out_chs, 1, norm_layer=_norm, act_layer=None))
        self.block = nn.Sequential(*layers)
        self.out_chs = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV3Head(nn.Module):
    """Sec. 5.1's efficient last stage after the pool: Linear + hard-swish, dropout, FC."""

    def __init__(self, in_features: int, hidden: int, num_classes: int, drop_rate: float) -> None:
        super().__init__()
        self.pre = nn.Linear(in_features, hidden)  # the paper's "conv2d 1x1, NBN"
        self.act = nn.Hardswish(inplace=True)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act(self.pre(x.mean((2, 3))))  # (N, hidden)
        return x if pre_logits else self.fc(self.drop(x))

    def reset(self, num_classes: int) -> None:
        """Replace the final linear layer with a freshly initialised one."""
        self.fc = nn.Linear(self.fc.in_features, num_classes)


class MobileNetV3(nn.Module):
    """Stem conv, bnecks from a table, 1x1 conv (6x), pool, the Linear head.

    Args:
        stages: Bneck table: ``MOBILENET_V3_LARGE`` (Table 1) or ``MOBILENET_V3_SMALL``.
        num_classes: Classifier outputs.
        in_chans: Input channels.
        width_mult: Width multiplier, applied to every layer (Table 3's 0.75 rows).
        small_input: Stride-1 stem (total stride 16), so a 28x28 input ends in a 2x2 map.
        drop_rate: Dropout before the classifier (0.2, torchvision's).
        head_hidden: Width of the head's hidden Linear at 1.0; defaults to 1280 for Large and
            1024 for Small.
    """

    def __init__(
        self,
        stages: tuple[BneckRow, ...] = MOBILENET_V3_LARGE,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        small_input: bool = False,
        drop_rate: float = 0.2,
        head_hidden: int | None = None,
    ) -> None:
        super().__init__()
        stem_chs = make_divisible(MOBILENET_V3_STEM * width_mult)
        stride = 1 if small_input else 2
        self.stem = conv_norm_act(
            in_chans, stem_chs, 3, stride, norm_layer=_norm, act_layer=nn.Hardswish
        )
        blocks: list[InvertedResidual] = []
        in_chs = stem_chs
        for row in stages:
            blocks.append(InvertedResidual(in_chs, row, width_mult))
            in_chs = blocks[-1].out_chs
        self.blocks = nn.Sequential(*blocks)
        self.num_features = 6 * in_chs
        self.conv_head = conv_norm_act(
            in_chs, self.num_features, 1, norm_layer=_norm, act_layer=nn.Hardswish
        )
        hidden = make_divisible((head_hidden or HEAD_HIDDEN.get(stages, 1280)) * width_mult)
        self.head = MobileNetV3Head(self.num_features, hidden, num_classes, drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation
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
        return self.conv_head(self.blocks(self.stem(x)))  # (N, 960 | 576, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.head.reset(num_classes)


def torchvision_key(key: str, num_blocks: int) -> str:
    """Map a torchvision MobileNetV3 state-dict key onto ours.

    torchvision: ``features.0`` (stem), ``features.1`` .. ``features.<num_blocks>`` (bnecks,
    each ``.block.<j>`` as here), ``features.<num_blocks + 1>`` (the 6x conv),
    ``classifier.0`` (Linear 1280 / 1024) and ``classifier.3`` (the FC).

    >>> torchvision_key("features.3.block.1.0.weight", 15)
    'blocks.2.block.1.0.weight'
    >>> torchvision_key("classifier.3.bias", 15)
    'head.fc.bias'
    """
    head, _, rest = key.partition(".")
    if head == "classifier":
        index, _, leaf = rest.partition(".")
        return {"0": "head.pre.", "3": "head.fc."}[index] + leaf
    index_s, _, leaf = rest.partition(".")
    position = int(index_s)
    if position == 0:
        return f"stem.{leaf}"
    if position == num_blocks + 1:
        return f"conv_head.{leaf}"
    return f"blocks.{position - 1}.{leaf}"


MOBILENET_V3 = Family(
    name="MobileNetV3",
    model=MobileNetV3,
    paper=Paper(
        "Searching for MobileNetV3",
        authors="Howard et al.",
        year=2019,
        arxiv="1905.02244",
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
_REF = "Params are torchvision's exact count; the paper prints {}M."

register_model(
    MOBILENET_V3,
    "mobilenet_v3_large_100",
    {"stages": MOBILENET_V3_LARGE},
    width_mult=1.0,
    params=5_483_032,
    macs=219 * _M,
    top1=75.2,
    table="Tables 1, 3",
    note=_REF.format(5.4),
)
register_model(
    MOBILENET_V3,
    "mobilenet_v3_large_075",
    {"stages": MOBILENET_V3_LARGE},
    width_mult=0.75,
    params=3_377_576,
    macs=140 * _M,  # torchvision's build; Table 3 prints 155M (see note)
    top1=73.3,
    table="Tables 1, 3",
    note=_REF.format(4.0) + " torchvision scales the 1280 head to 960 at 0.75; keeping "
    "1280 (TF-slim's fine-grain mode) would give 3,928,296. Table 3's 155M MACs are not "
    "reached by torchvision's width rule (140.0M, recorded); unresolved.",
)
register_model(
    MOBILENET_V3,
    "mobilenet_v3_small_100",
    {"stages": MOBILENET_V3_SMALL},
    width_mult=1.0,
    params=2_542_856,
    macs=56 * _M,
    top1=67.4,
    table="Tables 2, 3",
    note=_REF.format(2.5) + " Table 2's SE on the 576-wide conv is not in the reference.",
)
register_model(
    MOBILENET_V3,
    "mobilenet_v3_small_075",
    {"stages": MOBILENET_V3_SMALL},
    width_mult=0.75,
    params=1_653_920,
    macs=39 * _M,  # torchvision's build; Table 3 prints 44M (see note)
    top1=65.4,
    table="Tables 2, 3",
    note=_REF.format(2.0) + " torchvision scales the 1024 head to 768 at 0.75, which "
    "explains part of the gap. Table 3's 44M MACs are not reached by torchvision's width "
    "rule (39.1M, recorded); unresolved.",
)
