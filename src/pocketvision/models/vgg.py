"""VGG-11 and VGG-16, with and without batch norm.

Simonyan, Zisserman. "Very Deep Convolutional Networks for Large-Scale Image Recognition".
arXiv:1409.1556, 2014. Reproduces Table 1, configurations A (11 weight layers) and D (16):
stacks of 3x3 convolutions (stride 1, padding 1, with bias), each stack closed by a 2x2/2
max-pool, then FC-4096, FC-4096, FC-1000 with ReLU and dropout 0.5 after the first two.
Table 2 gives 133M and 138M parameters.

We follow torchvision (and Caffe's released weights) where the paper leaves a choice: an
adaptive 7x7 average pool before the first FC, so any input size reaches the 25088-wide FC
(at 224 px it is the identity). The ``_bn`` variants, not in the paper, put a BatchNorm after
every convolution and keep the convolution bias, as torchvision does (+2 params per channel).
The three FC layers hold 123.6M of VGG-16's 138.4M parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from pocketvision.layers import conv_norm_act
from pocketvision.registry import Family, Paper, register_model


class ConvStack(NamedTuple):
    c: int  # filters of every conv3 layer in the stack ("conv3-c" in Table 1)
    n: int  # conv3 layers before the stack's max-pool


# Simonyan & Zisserman 2014, Table 1.
VGG_A_STACKS = (
    ConvStack(64, 1),
    ConvStack(128, 1),
    ConvStack(256, 2),
    ConvStack(512, 2),
    ConvStack(512, 2),
)
VGG_D_STACKS = (
    ConvStack(64, 2),
    ConvStack(128, 2),
    ConvStack(256, 3),
    ConvStack(512, 3),
    ConvStack(512, 3),
)
VGG_FC = 4096  # width of FC-4096 (twice)
VGG_POOL = 7  # the last stack's map at 224 px: 224 / 2**5


def _uninitialised_linear(in_features: int, out_features: int) -> nn.Linear:
    # nn.Linear's own Kaiming-uniform init of the 102.8M-weight first FC takes seconds on CPU
    # and _init_weights overwrites it anyway; allocate on the current default device instead.
    return nn.utils.skip_init(
        nn.Linear, in_features, out_features, device=torch.get_default_device()
    )


class VGG(nn.Module):
    """Conv3 stacks from a table, each closed by a max-pool, then the three FC layers.

    Args:
        stacks: Table 1 column, first stack first.
        num_classes: Outputs of the last FC layer.
        in_chans: Input channels.
        batch_norm: BatchNorm after each convolution (the ``_bn`` variants).
        small_input: The max-pool after the first stack is removed (28 px reaches the last
            stack at 1x1 instead of 0x0) and the adaptive pool is 1x1, so the first FC is
            512 -> 4096 rather than 25088 -> 4096 fed by 49 copies of one pixel.
        drop_rate: Dropout after FC-4096 (both), the paper's 0.5.
    """

    def __init__(
        self,
        stacks: tuple[ConvStack, ...],
        num_classes: int = 1000,
        in_chans: int = 3,
        batch_norm: bool = False,
        small_input: bool = False,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        norm_layer = nn.BatchNorm2d if batch_norm else None
        layers: list[nn.Module] = []
        in_chs = in_chans
        for i, stack in enumerate(stacks):
            for _ in range(stack.n):
                layers.append(conv_norm_act(in_chs, stack.c, 3, norm_layer=norm_layer, bias=True))
                in_chs = stack.c
            if not (small_input and i == 0):
                layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.num_features = in_chs
        self.pool = nn.AdaptiveAvgPool2d(1 if small_input else VGG_POOL)
        pooled = in_chs * (1 if small_input else VGG_POOL**2)
        self.pre_logits = nn.Sequential(
            _uninitialised_linear(pooled, VGG_FC),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            _uninitialised_linear(VGG_FC, VGG_FC),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
        )
        self.fc = nn.Linear(VGG_FC, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's scheme (the paper pre-trained config A to initialise deeper nets;
        # Kaiming init, published later, removes the need).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (N, 512, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(self.pool(x).flatten(1))  # (N, 4096)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(VGG_FC, num_classes)


VGG_FAMILY = Family(
    name="VGG",
    model=VGG,
    paper=Paper(
        "Very Deep Convolutional Networks for Large-Scale Image Recognition",
        authors="Simonyan, Zisserman",
        year=2014,
        arxiv="1409.1556",
    ),
    small_input=(
        "The max-pool after the first conv stack is removed (28 px reaches the last stack "
        "at 1x1) and the adaptive pool is 1x1, so the first FC is 512 -> 4096 instead of "
        "25088 -> 4096 (2.1M params instead of 102.8M; VGG-16 totals 37.7M)."
    ),
    first_conv="features.0.0",
    classifier="fc",
    options=("drop_rate",),
)
_TOP1 = "Top-1 is torchvision's."
_BN_NOTE = "The paper has no BN variant: params and top-1 are torchvision's."

register_model(
    VGG_FAMILY,
    "vgg11",
    {"stacks": VGG_A_STACKS, "batch_norm": False},
    params=132_863_336,
    macs=7_610_000_000,
    top1=69.0,
    table="Table 1 config A, Table 2",
    note=_TOP1,
)
register_model(
    VGG_FAMILY,
    "vgg11_bn",
    {"stacks": VGG_A_STACKS, "batch_norm": True},
    params=132_868_840,
    macs=7_610_000_000,
    top1=70.4,
    table="Table 1 config A + BatchNorm (torchvision)",
    note=_BN_NOTE,
)
register_model(
    VGG_FAMILY,
    "vgg16",
    {"stacks": VGG_D_STACKS, "batch_norm": False},
    params=138_357_544,
    macs=15_470_000_000,
    top1=71.6,
    table="Table 1 config D, Table 2",
    note=f"{_TOP1} The FC layers hold 123,642,856 of the parameters (89%).",
)
register_model(
    VGG_FAMILY,
    "vgg16_bn",
    {"stacks": VGG_D_STACKS, "batch_norm": True},
    params=138_365_992,
    macs=15_470_000_000,
    top1=73.4,
    table="Table 1 config D + BatchNorm (torchvision)",
    note=_BN_NOTE,
)
