"""ResNet-18 and ResNet-50 (torchvision's v1.5), and the ResNet class SE-ResNet reuses.

He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition". arXiv:1512.03385, 2015.
Reproduces Table 1: conv1 7x7/2 64, 3x3/2 max-pool, stages conv2_x..conv5_x of basic blocks
(two 3x3) for 18 layers or bottleneck blocks (1x1, 3x3, 1x1 with 4x expansion) for 50, global
average pool, FC-1000. Projection shortcuts (1x1 conv + BN, option B) where shape changes.

Stride placement: the paper (v1) strides the bottleneck's first 1x1 conv; torchvision's
resnet50 (v1.5, from fb.resnet.torch) strides its 3x3 conv instead, which costs more MACs
(4.09G vs 3.86G) for ~0.5% more top-1, with identical parameters. resnet18/resnet50 here are
v1.5 to match torchvision's published numbers; ``Bottleneck(stride_in_1x1=True)`` gives v1,
which the SENet paper uses (see models/senet.py). No conv bias; BN after every conv.

Blocks take ``norm_layer``, ``act_layer`` and ``se_layer``: SE-ResNet is this ResNet with
``se_layer=SqueezeExcite``, applied on the residual branch after its last BN, before the add.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, NamedTuple

import torch
from torch import nn

from pocketvision.layers import ClassifierHead, conv_norm_act
from pocketvision.registry import Family, Paper, register_model

LayerFactory = Callable[..., nn.Module]
SELayer = Callable[[int], nn.Module]


class ResStage(NamedTuple):
    name: str  # the paper's layer name
    c: int  # block width (3x3 conv filters); outputs are c * block expansion
    n: int  # blocks
    s: int  # stride of the first block


# He et al. 2015, Table 1 (the widths are shared by every depth; only n changes).
RESNET18_STAGES = (
    ResStage("conv2_x", 64, 2, 1),
    ResStage("conv3_x", 128, 2, 2),
    ResStage("conv4_x", 256, 2, 2),
    ResStage("conv5_x", 512, 2, 2),
)
RESNET50_STAGES = (
    ResStage("conv2_x", 64, 3, 1),
    ResStage("conv3_x", 128, 4, 2),
    ResStage("conv4_x", 256, 6, 2),
    ResStage("conv5_x", 512, 3, 2),
)
STEM_CHS = 64  # conv1


def _shortcut(in_chs: int, out_chs: int, stride: int, norm_layer: LayerFactory) -> nn.Module:
    # Option B of Sec. 3.3: identity when shapes agree, else a strided 1x1 projection + BN.
    if stride == 1 and in_chs == out_chs:
        return nn.Identity()
    return conv_norm_act(in_chs, out_chs, 1, stride, norm_layer=norm_layer, act_layer=None)


class BasicBlock(nn.Module):
    """3x3 -> BN -> act -> 3x3 -> BN [-> SE], + shortcut, act (ResNet-18/34)."""

    expansion: ClassVar[int] = 1

    def __init__(
        self,
        in_chs: int,
        width: int,
        stride: int = 1,
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
        se_layer: SELayer | None = None,
    ) -> None:
        super().__init__()
        out_chs = width * self.expansion
        self.conv1 = conv_norm_act(
            in_chs, width, 3, stride, norm_layer=norm_layer, act_layer=act_layer
        )
        self.conv2 = conv_norm_act(width, out_chs, 3, norm_layer=norm_layer, act_layer=None)
        self.se = se_layer(out_chs) if se_layer is not None else nn.Identity()
        self.shortcut = _shortcut(in_chs, out_chs, stride, norm_layer)
        self.act = act_layer(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.se(self.conv2(self.conv1(x))) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (4x width), BN after each [-> SE], + shortcut, act (ResNet-50+).

    Args:
        stride_in_1x1: Stride the first 1x1 conv (the paper, v1) instead of the 3x3 (v1.5).
    """

    expansion: ClassVar[int] = 4

    def __init__(
        self,
        in_chs: int,
        width: int,
        stride: int = 1,
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
        se_layer: SELayer | None = None,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        out_chs = width * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv_norm_act(in_chs, width, 1, s1, norm_layer=norm_layer, act_layer=act_layer)
        self.conv2 = conv_norm_act(width, width, 3, s3, norm_layer=norm_layer, act_layer=act_layer)
        self.conv3 = conv_norm_act(width, out_chs, 1, norm_layer=norm_layer, act_layer=None)
        self.se = se_layer(out_chs) if se_layer is not None else nn.Identity()
        self.shortcut = _shortcut(in_chs, out_chs, stride, norm_layer)
        self.act = act_layer(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.se(self.conv3(self.conv2(self.conv1(x))))
        return self.act(branch + self.shortcut(x))


class ResNet(nn.Module):
    """conv1 stem, the stages of a table built from one block type, pooled FC head.

    Args:
        block: BasicBlock or Bottleneck.
        stages: conv2_x..conv5_x rows.
        num_classes: FC outputs.
        in_chans: Input channels.
        small_input: conv1 becomes 3x3 stride 1 (64 filters) and the max-pool is removed, as
            in the CIFAR ResNets: 28 px inputs reach conv5_x at 4x4 instead of 1x1.
        stride_in_1x1: Bottleneck only: v1 stride placement (see module docstring).
        se_layer: Called with a block's output channels; None for plain ResNet.
        norm_layer: Normalization after every conv.
        act_layer: Activation (called with ``inplace=True``).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        stages: tuple[ResStage, ...],
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
        stride_in_1x1: bool = False,
        se_layer: SELayer | None = None,
        norm_layer: LayerFactory = nn.BatchNorm2d,
        act_layer: LayerFactory = nn.ReLU,
    ) -> None:
        super().__init__()
        if stride_in_1x1 and block is not Bottleneck:
            raise ValueError("stride_in_1x1 applies to Bottleneck blocks only")
        extra = {"stride_in_1x1": stride_in_1x1} if block is Bottleneck else {}
        k, s = (3, 1) if small_input else (7, 2)
        self.conv1 = conv_norm_act(
            in_chans, STEM_CHS, k, s, norm_layer=norm_layer, act_layer=act_layer
        )
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, padding=1)
        stage_modules: list[nn.Module] = []
        in_chs = STEM_CHS
        for stage in stages:
            blocks: list[nn.Module] = []
            for i in range(stage.n):
                stride = stage.s if i == 0 else 1
                blocks.append(
                    block(in_chs, stage.c, stride, norm_layer, act_layer, se_layer, **extra)
                )
                in_chs = stage.c * block.expansion
            stage_modules.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stage_modules)
        self.num_features = in_chs
        self.head = ClassifierHead(in_chs, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's scheme: Kaiming-normal (fan_out) convs, BN at identity, zero biases.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.maxpool(self.conv1(x)))  # (N, 512 * expansion, H/32, W/32)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.head.reset(num_classes)


RESNET = Family(
    name="ResNet",
    model=ResNet,
    paper=Paper(
        "Deep Residual Learning for Image Recognition",
        authors="He, Zhang, Ren, Sun",
        year=2015,
        arxiv="1512.03385",
    ),
    small_input=(
        "conv1 becomes 3x3 stride 1 (64 filters, padding 1) and the 3x3/2 max-pool is removed, "
        "as in the CIFAR ResNets: 28 px inputs reach conv5_x at 4x4."
    ),
    first_conv="conv1.0",
    classifier="head.fc",
)
_TABLE = "Table 1 (torchvision v1.5: stride on the bottleneck 3x3)"

register_model(
    RESNET,
    "resnet18",
    {"block": BasicBlock, "stages": RESNET18_STAGES},
    params=11_689_512,
    macs=1_810_000_000,
    top1=69.8,
    table=_TABLE,
    note="Top-1 is torchvision's.",
)
register_model(
    RESNET,
    "resnet50",
    {"block": Bottleneck, "stages": RESNET50_STAGES},
    params=25_557_032,
    macs=4_090_000_000,
    top1=76.1,
    table=_TABLE,
    note="Top-1 is torchvision's. The paper's v1 (stride on the first 1x1) has the same "
    "params and 3.86G MACs.",
)
