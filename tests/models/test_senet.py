"""SE networks against Hu et al. 2018 (Fig. 3, Tables 2, 3, 10): SE as a pluggable layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pocketvision import create_model, model_info
from pocketvision.layers import SqueezeExcite
from pocketvision.models.mobilenet_v1 import DepthwiseSeparable, MobileNetV1
from pocketvision.models.resnet import RESNET50_STAGES, BasicBlock, Bottleneck, ResNet
from pocketvision.models.shufflenet_v1 import ShuffleNetV1, ShuffleUnit
from pocketvision.profile import count_macs, count_params


class ZeroGate(nn.Module):
    """An SE stand-in whose gate is shut: it zeroes whatever branch it sits on."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == self.channels
        return x * 0


def _meta(name: str) -> nn.Module:
    with torch.device("meta"):
        return create_model(name)


def test_se_resnet50_is_resnet50_v1_plus_one_se_per_bottleneck() -> None:
    model = _meta("se_resnet50")
    assert isinstance(model, ResNet)
    blocks = [b for stage in model.stages for b in stage]
    assert len(blocks) == 16 and all(isinstance(b.se, SqueezeExcite) for b in blocks)
    # Table 10: SE widths fc [C/16, C] with C the bottleneck output (256, 512, 1024, 2048)
    for block in blocks:
        c = block.conv3[0].out_channels
        assert (block.se.fc1.in_channels, block.se.fc1.out_channels) == (c, c // 16)
        assert (block.se.fc2.in_channels, block.se.fc2.out_channels) == (c // 16, c)
    # Sec. 6.1 / Table 2 uses ResNet v1: stride on the first 1x1
    first = model.stages[1][0]
    assert (first.conv1[0].stride, first.conv2[0].stride) == ((2, 2), (1, 1))
    # the SE parameters are exactly the difference to plain ResNet-50 (25,557,032)
    se_params = sum(
        2 * (4 * s.c) * (4 * s.c // 16) + 4 * s.c // 16 + 4 * s.c
        for s in RESNET50_STAGES
        for _ in range(s.n)
    )
    assert count_params(model) == 25_557_032 + se_params == 28_088_024


@pytest.mark.parametrize("block_type", [BasicBlock, Bottleneck])
def test_se_sits_after_the_last_bn_and_before_the_add(block_type: type[nn.Module]) -> None:
    in_chs = 32 * block_type.expansion  # type: ignore[attr-defined]
    block = block_type(in_chs, 32, se_layer=ZeroGate).eval()
    x = torch.randn(2, in_chs, 6, 6)
    with torch.no_grad():
        # a shut gate on the branch leaves ReLU(shortcut): the SE is before the add
        assert torch.equal(block(x), torch.relu(x))
    # and its input is the last BN's output (no activation in between)
    block = block_type(in_chs, 32, se_layer=SqueezeExcite).eval()
    seen: dict[str, torch.Tensor] = {}
    last = block.conv3 if block_type is Bottleneck else block.conv2
    last.register_forward_hook(lambda m, i, o: seen.__setitem__("bn", o))
    block.se.register_forward_hook(lambda m, i, o: seen.__setitem__("se_in", i[0]))
    with torch.no_grad():
        block(x)
    assert isinstance(last[-1], nn.BatchNorm2d)
    assert torch.equal(seen["se_in"], seen["bn"]) and (seen["bn"] < 0).any()


def test_squeeze_excite_follows_fig3() -> None:
    se = SqueezeExcite(32)
    x = torch.randn(2, 32, 5, 5)
    z = x.mean((2, 3))  # squeeze
    h = F.relu(F.linear(z, se.fc1.weight.flatten(1), se.fc1.bias))  # C -> C/16
    s = torch.sigmoid(F.linear(h, se.fc2.weight.flatten(1), se.fc2.bias))  # C/16 -> C
    assert h.shape == (2, 2)  # reduction 16
    assert torch.allclose(se(x), x * s[:, :, None, None], atol=1e-6)


def test_se_mobilenet_puts_se_after_every_pointwise_bn_relu() -> None:
    model = _meta("se_mobilenet_v1_100")
    assert isinstance(model, MobileNetV1)
    blocks = [m for m in model.modules() if isinstance(m, DepthwiseSeparable)]
    assert len(blocks) == 13 and all(isinstance(b.se, SqueezeExcite) for b in blocks)
    block = DepthwiseSeparable(8, 16, 1, se_layer=ZeroGate)
    assert isinstance(block.conv_pw[-1], nn.ReLU)  # the SE sees the activated output
    assert not block(torch.randn(1, 8, 4, 4)).any()


def test_se_shufflenet_puts_se_on_the_branch_before_add_or_concat() -> None:
    model = _meta("se_shufflenet_v1_g3_100")
    assert isinstance(model, ShuffleNetV1)
    units = [m for m in model.modules() if isinstance(m, ShuffleUnit)]
    assert len(units) == 16 and all(isinstance(u.se, SqueezeExcite) for u in units)
    # stride-2 units excite only their branch: out - in channels (240 - 24 in Stage 2)
    assert units[0].se.fc1.in_channels == 216
    x = torch.randn(2, 48, 8, 8)
    add = ShuffleUnit(48, 48, 1, 3, se_layer=ZeroGate).eval()
    cat = ShuffleUnit(48, 96, 2, 3, se_layer=ZeroGate).eval()
    with torch.no_grad():
        assert torch.equal(add(x), torch.relu(x))
        out = cat(x)
        assert torch.equal(out[:, :48], torch.relu(F.avg_pool2d(x, 3, 2, 1)))
        assert not out[:, 48:].any()


# Table 3: (base net, its MACs, SE net, its MACs, params truncated to 0.1M)
TABLE3 = [
    ("mobilenet_v1_100", 569e6, "se_mobilenet_v1_100", 572e6, 4.7),
    ("shufflenet_v1_g3_100", 140e6, "se_shufflenet_v1_g3_100", 142e6, 2.4),
]


@pytest.mark.parametrize(("base", "base_macs", "name", "se_macs", "params_m"), TABLE3)
def test_table3_increments_are_se_fcs_plus_one_multiply_per_rescaled_element(
    base: str, base_macs: float, name: str, se_macs: float, params_m: float
) -> None:
    model = _meta(name)
    assert int(count_params(model) / 1e5) / 10 == params_m  # the paper truncates
    assert count_params(model) == model_info(name).params
    rescaled = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal rescaled
        rescaled += output.numel()

    for m in model.modules():
        if isinstance(m, SqueezeExcite):
            m.register_forward_hook(count)
    fc_macs = count_macs(model, (3, 224, 224)) - count_macs(_meta(base), (3, 224, 224))
    assert 0 < fc_macs < 1e6 and rescaled > 1e6
    # Table 3's increment, rounded to 1M by the paper, is the SE FCs plus the rescale
    assert abs(fc_macs + rescaled - (se_macs - base_macs)) < 0.5e6


def test_se_shufflenet_records_table3_on_the_conv_linear_basis() -> None:
    # Zhang et al.'s Table 1 gives 137M for the base; Table 3 adds 2M for SE.
    assert model_info("shufflenet_v1_g3_100").macs == 137_000_000
    assert model_info("se_shufflenet_v1_g3_100").macs == 137_000_000 + 2_000_000
    assert model_info("se_mobilenet_v1_100").macs == 572_000_000
