"""Squeeze-and-excitation networks: SE-ResNet-50 and the SE variants of two mobile families.

Hu, Shen, Albanie, Sun, Wu. "Squeeze-and-Excitation Networks". arXiv:1709.01507, 2017
(CVPR 2018). Reproduces Table 2 (SE-ResNet-50: 28.09M params, 3.87 GFLOPs, top-1 error 23.29%)
and Table 10 (the SE-ResNet-50 layout). An SE block (Fig. 3) pools each channel, passes the
C-vector through FC C -> C/16 -> C with ReLU then sigmoid, and rescales the channels; it sits
on the residual branch after its last BN, before the identity add.

No new architecture lives here: each model is its base family with
``se_layer=SqueezeExcite`` passed in. The paper's ResNet-50 is v1 (stride on the first 1x1
of a bottleneck), not torchvision's v1.5, so SE-ResNet-50 sets ``stride_in_1x1=True``; that
is what gives 3.86G MACs for the base net (4.09G for v1.5).
"""

from __future__ import annotations

from pocketvision.layers import SqueezeExcite
from pocketvision.models.resnet import RESNET50_STAGES, Bottleneck, ResNet
from pocketvision.models.resnet import SMALL_INPUT as RESNET_SMALL_INPUT
from pocketvision.registry import ModelInfo, register_model

_PAPER = "Squeeze-and-Excitation Networks"
_AUTHORS = "Hu, Shen, Albanie, Sun, Wu"


@register_model(
    ModelInfo(
        name="se_resnet50",
        family="SENet",
        paper=_PAPER,
        authors=_AUTHORS,
        year=2018,
        arxiv="1709.01507",
        table="Table 2 (numbers), Table 10 (layout); ResNet v1 stride placement",
        input_size=(3, 224, 224),
        params=28_088_024,
        macs=3_860_000_000,
        top1=76.7,
        small_input=RESNET_SMALL_INPUT,
    )
)
def se_resnet50(*, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False) -> ResNet:
    """SE-ResNet-50: 28,088,024 params, 3.86G MACs at 224 px, top-1 76.7% (Table 2: 23.29% error).

    ResNet-50 v1 (stride on the first 1x1) with SE (reduction 16) in every bottleneck.
    """
    return ResNet(
        Bottleneck,
        RESNET50_STAGES,
        num_classes,
        in_chans,
        small_input,
        stride_in_1x1=True,
        se_layer=SqueezeExcite,
    )
