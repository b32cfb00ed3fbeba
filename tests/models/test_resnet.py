"""ResNet against He et al. 2015, Table 1, and the v1 / v1.5 stride placement."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pocketvision import create_model
from pocketvision.models.resnet import (
    RESNET18_STAGES,
    RESNET50_STAGES,
    BasicBlock,
    Bottleneck,
    ResNet,
)
from pocketvision.profile import count_macs, count_params


def _meta(name: str, **kwargs: object) -> ResNet:
    with torch.device("meta"):
        model = create_model(name, **kwargs)
    assert isinstance(model, ResNet)
    return model


@pytest.mark.parametrize(
    ("name", "block", "blocks", "width"),
    [("resnet18", BasicBlock, [2, 2, 2, 2], 512), ("resnet50", Bottleneck, [3, 4, 6, 3], 2048)],
)
def test_stage_outputs_follow_table1(
    name: str, block: type[nn.Module], blocks: list[int], width: int
) -> None:
    model = _meta(name)
    x = model.maxpool(model.conv1(torch.empty(1, 3, 224, 224, device="meta")))
    assert x.shape == (1, 64, 56, 56)  # conv1 112x112, then the 3x3/2 max-pool
    expansion = width // 512
    for stage, n, c, side in zip(
        model.stages, blocks, [64, 128, 256, 512], [56, 28, 14, 7], strict=True
    ):
        assert len(stage) == n and all(isinstance(b, block) for b in stage)
        x = stage(x)
        assert x.shape == (1, c * expansion, side, side)
    assert model.num_features == width


def test_shortcuts_project_only_where_the_shape_changes() -> None:
    # Option B: identity inside a stage; 1x1 + BN on the first block of a stage when the
    # stride or the width changes (resnet18's conv2_x keeps 64 channels: identity there).
    for name, projected in [("resnet18", [False, True, True, True]), ("resnet50", [True] * 4)]:
        model = _meta(name)
        firsts = [not isinstance(stage[0].shortcut, nn.Identity) for stage in model.stages]
        assert firsts == projected, name
        rest = [b for stage in model.stages for b in list(stage)[1:]]
        assert all(isinstance(b.shortcut, nn.Identity) for b in rest)


def test_no_conv_has_a_bias_and_bn_follows_every_conv() -> None:
    model = _meta("resnet50")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(c.bias is None for c in convs)
    assert len(convs) == len(norms) == 1 + 16 * 3 + 4  # conv1, 16 bottlenecks, 4 projections


def test_v1_5_strides_the_3x3_and_v1_the_first_1x1() -> None:
    v1_5 = _meta("resnet50")
    with torch.device("meta"):
        v1 = ResNet(Bottleneck, RESNET50_STAGES, stride_in_1x1=True)
    for stage in range(1, 4):  # conv3_x..conv5_x start at stride 2
        a, b = v1_5.stages[stage][0], v1.stages[stage][0]
        assert (a.conv1[0].stride, a.conv2[0].stride) == ((1, 1), (2, 2))
        assert (b.conv1[0].stride, b.conv2[0].stride) == ((2, 2), (1, 1))
    # Same weights, different cost: Table 1's 3.8 GFLOPs is v1; torchvision's 4.09G is v1.5.
    assert count_params(v1) == count_params(v1_5) == 25_557_032
    assert 3.8e9 <= count_macs(v1, (3, 224, 224)) < 3.9e9
    assert count_macs(v1_5, (3, 224, 224)) == pytest.approx(4.09e9, rel=0.002)


def test_resnet18_is_table1s_1_8_gflops() -> None:
    assert count_macs(_meta("resnet18"), (3, 224, 224)) == pytest.approx(1.8e9, rel=0.01)


def test_stride_in_1x1_is_refused_for_basic_blocks() -> None:
    with pytest.raises(ValueError, match="Bottleneck"):
        ResNet(BasicBlock, RESNET18_STAGES, stride_in_1x1=True)


def test_residual_add_then_relu() -> None:
    # An identity block whose branch is switched off (last BN's gamma and beta at zero)
    # must return ReLU(x): the add is before the final activation, the shortcut untouched.
    block = Bottleneck(64, 16).eval()
    nn.init.zeros_(block.conv3[1].weight)
    nn.init.zeros_(block.conv3[1].bias)
    x = torch.randn(2, 64, 5, 5)
    with torch.no_grad():
        assert torch.equal(block(x), torch.relu(x))


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_small_input_stem(name: str) -> None:
    model = _meta(name, in_chans=1, small_input=True)
    conv1 = model.conv1[0]
    assert (conv1.kernel_size, conv1.stride, conv1.padding) == ((3, 3), (1, 1), (1, 1))
    assert isinstance(model.maxpool, nn.Identity)
    feats = model.forward_features(torch.empty(2, 1, 28, 28, device="meta"))
    assert feats.shape == (2, model.num_features, 4, 4)
    # only conv1's kernel changes: 7x7 -> 3x3 on one input channel
    assert count_params(_meta(name, in_chans=1)) - count_params(model) == 64 * (49 - 9)


def test_width_mult_is_rejected() -> None:
    with pytest.raises(TypeError, match="width_mult"):
        create_model("resnet18", width_mult=0.5)
