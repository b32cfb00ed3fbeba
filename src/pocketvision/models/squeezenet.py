"""SqueezeNet 1.0 and 1.1.

Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer. "SqueezeNet: AlexNet-level accuracy with 50x
fewer parameters and <0.5MB model size". arXiv:1602.07360, 2016. Reproduces Table 1 (the
macroarchitecture of v1.0: conv1 96@7x7/2, fire2-fire9, conv10) and the v1.1 variant of the
authors' release (conv1 64@3x3/2, max-pools moved earlier: 2.4x fewer MACs, same accuracy).

A fire module squeezes with ``s1x1`` 1x1 filters, then expands with ``e1x1`` 1x1 and ``e3x3``
3x3 filters whose outputs are concatenated. Convolutions carry a bias and there is no batch
norm (2016 predates its use here). Max-pools are 3x3/2 with ``ceil_mode=True``, as in the
Caffe release, which is what gives the published params and MACs (registered below).
The head is the paper's: dropout 0.5, conv10 (1x1, one filter per class), ReLU, global
average pool; there is no fully connected layer.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from pocketvision.registry import Family, Paper, register_model


class Conv1(NamedTuple):
    c: int  # filters
    k: int  # kernel size (stride 2, no padding)


class FireRow(NamedTuple):
    s1x1: int  # squeeze filters
    e1x1: int  # 1x1 expand filters
    e3x3: int  # 3x3 expand filters
    pool: bool  # 3x3/2 max-pool after this module


# Iandola et al. 2016, Table 1: conv1, maxpool1, fire2-fire4, maxpool4, fire5-fire8, maxpool8, fire9.
SQUEEZENET1_0_CONV1 = Conv1(96, 7)
SQUEEZENET1_0_FIRES = (
    FireRow(16, 64, 64, False),  # fire2
    FireRow(16, 64, 64, False),  # fire3
    FireRow(32, 128, 128, True),  # fire4
    FireRow(32, 128, 128, False),  # fire5
    FireRow(48, 192, 192, False),  # fire6
    FireRow(48, 192, 192, False),  # fire7
    FireRow(64, 256, 256, True),  # fire8
    FireRow(64, 256, 256, False),  # fire9
)
# SqueezeNet v1.1 (release notes of github.com/DeepScale/SqueezeNet): conv1 64@3x3, pools
# after conv1, fire3 and fire5; the fire modules themselves are unchanged.
SQUEEZENET1_1_CONV1 = Conv1(64, 3)
SQUEEZENET1_1_FIRES = (
    FireRow(16, 64, 64, False),  # fire2
    FireRow(16, 64, 64, True),  # fire3
    FireRow(32, 128, 128, False),  # fire4
    FireRow(32, 128, 128, True),  # fire5
    FireRow(48, 192, 192, False),  # fire6
    FireRow(48, 192, 192, False),  # fire7
    FireRow(64, 256, 256, False),  # fire8
    FireRow(64, 256, 256, False),  # fire9
)


class Fire(nn.Module):
    """Squeeze 1x1 -> ReLU -> [expand 1x1, expand 3x3 (padding 1)] -> ReLU each -> concat."""

    def __init__(self, in_chs: int, s1x1: int, e1x1: int, e3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_chs, s1x1, 1)
        self.expand1x1 = nn.Conv2d(s1x1, e1x1, 1)
        self.expand3x3 = nn.Conv2d(s1x1, e3x3, 3, padding=1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.squeeze(x))
        return torch.cat([self.act(self.expand1x1(x)), self.act(self.expand3x3(x))], 1)


def _max_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


class SqueezeNet(nn.Module):
    """conv1 and the fire modules from a table, then the convolutional classifier.

    Args:
        conv1: First convolution (filters, kernel).
        fires: Fire modules fire2..fire9 in order.
        num_classes: conv10 filters.
        in_chans: Input channels.
        small_input: conv1 gets stride 1 and "same" padding and the max-pool after it is
            dropped, so 28 px images still reach fire9 at 7x7 instead of 1x1.
        drop_rate: Dropout before conv10 (the paper's 0.5).
    """

    def __init__(
        self,
        conv1: Conv1,
        fires: tuple[FireRow, ...],
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        stride, padding = (1, conv1.k // 2) if small_input else (2, 0)
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, conv1.c, conv1.k, stride, padding),
            nn.ReLU(inplace=True),
        ]
        if not small_input:
            layers.append(_max_pool())
        in_chs = conv1.c
        for row in fires:
            layers.append(Fire(in_chs, row.s1x1, row.e1x1, row.e3x3))
            in_chs = row.e1x1 + row.e3x3
            if row.pool:
                layers.append(_max_pool())
        self.features = nn.Sequential(*layers)
        self.num_features = in_chs
        self.drop = nn.Dropout(drop_rate)
        self.conv10 = nn.Conv2d(in_chs, num_classes, 1)
        self.act = nn.ReLU(inplace=True)
        self._init_weights()

    def _init_weights(self) -> None:
        # The reference release: conv10 ~ N(0, 0.01) so the initial class scores are near
        # zero; the other convolutions use Kaiming-uniform; every bias starts at zero.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is self.conv10:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (N, 512, H/16, W/16) at ImageNet sizes

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return x.mean((2, 3))  # (N, 512): pooled features, what conv10 classifies
        x = self.act(self.conv10(self.drop(x)))
        return x.mean((2, 3), keepdim=True).flatten(1)  # (N, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.conv10 = nn.Conv2d(self.num_features, num_classes, 1)
        nn.init.normal_(self.conv10.weight, 0.0, 0.01)
        if self.conv10.bias is not None:
            nn.init.zeros_(self.conv10.bias)


SQUEEZENET = Family(
    name="SqueezeNet",
    model=SqueezeNet,
    paper=Paper(
        "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size",
        authors="Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer",
        year=2016,
        arxiv="1602.07360",
    ),
    small_input=(
        "conv1 keeps its kernel but gets stride 1 and padding k//2, and maxpool1 (after conv1) "
        "is removed: 28 px inputs reach fire9 at 7x7 instead of 1x1."
    ),
    first_conv="features.0",
    classifier="conv10",
    options=("drop_rate",),
)

register_model(
    SQUEEZENET,
    "squeezenet1_0",
    {"conv1": SQUEEZENET1_0_CONV1, "fires": SQUEEZENET1_0_FIRES},
    params=1_248_424,
    macs=818_900_000,
    top1=57.5,
    macs_at=((227, 832_700_000),),
    table="Table 1 (architecture), Table 2 (accuracy)",
    note="Top-5 80.3% (Table 2), 4.8 MB as fp32; 227 px is the paper's input size.",
)
register_model(
    SQUEEZENET,
    "squeezenet1_1",
    {"conv1": SQUEEZENET1_1_CONV1, "fires": SQUEEZENET1_1_FIRES},
    params=1_235_496,
    macs=349_200_000,
    top1=58.2,
    table="SqueezeNet v1.1 release (Table 1 with conv1 64@3x3 and earlier pools)",
)
