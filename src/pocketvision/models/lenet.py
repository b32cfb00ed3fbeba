"""LeNet-5, the "basic nn" of the classic era.

LeCun, Bottou, Bengio, Haffner. "Gradient-Based Learning Applied to Document Recognition".
Proc. IEEE 1998 (no arXiv id). Reproduces Fig. 2: C1 6@28x28 (5x5), S2 2x2 subsampling,
C3 16@10x10 (5x5), S4, C5 120 (5x5), F6 84, output 10; 32x32 grayscale input.

We build the form every modern reimplementation uses, and say where it differs from 1998:
C3 is fully connected to S2 (the paper's sparse connection table is gone), subsampling is a
parameter-free 2x2 average pool (the paper's had one trainable weight and bias per map),
ReLU replaces the scaled tanh, and the output is a linear layer instead of RBF units.
That gives 61,706 parameters (the paper quotes "about 60,000") and 416,520 MACs at 32x32:
C1 117,600 + C3 240,000 + C5 48,000 + F6 10,080 + output 840.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from pocketvision.registry import Family, Paper, register_model


class ConvStage(NamedTuple):
    c: int  # output maps
    k: int  # kernel size
    pool: bool  # 2x2 subsampling after the convolution


# LeCun et al. 1998, Fig. 2: C1 + S2, C3 + S4, C5.
LENET5_STAGES = (ConvStage(6, 5, True), ConvStage(16, 5, True), ConvStage(120, 5, False))
LENET5_F6 = 84


class LeNet(nn.Module):
    """Convolution/subsampling stages from a table, then F6 and the output layer.

    Args:
        num_classes: Output units (10 for digits).
        in_chans: Input channels.
        small_input: Pad C1 by 2 so 28x28 MNIST-style images enter as the paper's 32x32 did.
    """

    def __init__(
        self,
        stages: tuple[ConvStage, ...] = LENET5_STAGES,
        num_classes: int = 10,
        in_chans: int = 1,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_chs = in_chans
        for i, stage in enumerate(stages):
            padding = 2 if (small_input and i == 0) else 0
            if i == len(stages) - 1:
                # C5 sees exactly a 5x5 map at the paper's size; pooling to it lets any size in.
                layers.append(nn.AdaptiveAvgPool2d(stage.k))
            layers += [nn.Conv2d(in_chs, stage.c, stage.k, padding=padding), nn.ReLU(inplace=True)]
            if stage.pool:
                layers.append(nn.AvgPool2d(2))
            in_chs = stage.c
        self.features = nn.Sequential(*layers)
        self.num_features = in_chs
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(in_chs, LENET5_F6), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(LENET5_F6, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (N, 120, 1, 1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.fc(x)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.classifier = nn.Linear(LENET5_F6, num_classes)


LENET = Family(
    name="LeNet",
    model=LeNet,
    paper=Paper(
        "Gradient-Based Learning Applied to Document Recognition",
        authors="LeCun, Bottou, Bengio, Haffner",
        year=1998,
    ),
    small_input="C1 gets padding 2, so 28x28 digits map to the paper's 28x28 C1 output.",
    first_conv="features.0",
    classifier="classifier",
    input_size=(1, 32, 32),
    num_classes=10,
)

register_model(
    LENET,
    "lenet5",
    params=61_706,
    macs=416_520,
    top1=None,
    table="Fig. 2 (modern form: full C3, average-pool subsampling, ReLU, linear output)",
    note='The paper quotes "about 60,000" parameters.',
)
