"""ShuffleNet v1 against Zhang et al. 2017 and the reference release (megvii ShuffleNet-Series).

The registry-wide tests (tests/test_models.py -k shufflenet) hold every registered name to its
ModelInfo; these hold ModelInfo and the builds to the published figures themselves, and check
the details of Fig. 2 a reimplementation gets wrong.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pocketvision import create_model, model_info
from pocketvision.layers import SqueezeExcite, channel_shuffle
from pocketvision.models.shufflenet_v1 import (
    ShuffleNetV1,
    ShuffleUnit,
    shufflenet_v1,
    shufflenet_v1_stages,
)
from pocketvision.profile import count_macs, count_params

# name: (g, width, params (ARCHITECTURES.md, exact; None where unpublished), MACs in M, top-1)
# Table 1 (1x complexity), Table 2 (1x and 0.5x top-1 = 100 - error), Table 5 (1.5x, 2x).
PAPER = {
    "shufflenet_v1_g1_100": (1, 1.0, 1_531_936, 143, 66.4),
    "shufflenet_v1_g2_100": (2, 1.0, 1_733_848, 140, 67.3),
    "shufflenet_v1_g3_100": (3, 1.0, 1_865_728, 137, 67.4),
    "shufflenet_v1_g4_100": (4, 1.0, 1_968_344, 133, 67.2),
    "shufflenet_v1_g8_100": (8, 1.0, 2_434_768, 137, 67.6),
    "shufflenet_v1_g3_050": (3, 0.5, None, 38, 56.8),
    "shufflenet_v1_g3_150": (3, 1.5, None, 292, 71.5),
    "shufflenet_v1_g3_200": (3, 2.0, None, 524, 73.7),
}

# The release's README: (g, width, MACs in M, params in M), both printed rounded.
RELEASE = [
    (3, 0.5, 38, 0.7),
    (3, 1.0, 138, 1.9),
    (3, 1.5, 292, 3.4),
    (3, 2.0, 524, 5.4),
    (8, 0.5, 40, 1.0),
    (8, 1.0, 138, 2.4),
    (8, 1.5, 290, 4.3),
    (8, 2.0, 522, 6.5),
]

# The release's network.py: stage_out_channels[1:] = conv1, Stage 2, 3, 4.
RELEASE_CHANNELS = {
    (3, 0.5): (12, 120, 240, 480),
    (3, 1.0): (24, 240, 480, 960),
    (3, 1.5): (24, 360, 720, 1440),
    (3, 2.0): (48, 480, 960, 1920),
    (8, 0.5): (16, 192, 384, 768),
    (8, 1.0): (24, 384, 768, 1536),
    (8, 1.5): (24, 576, 1152, 2304),
    (8, 2.0): (48, 768, 1536, 3072),
}


def _counts(groups: int, width_mult: float, **kwargs: object) -> tuple[int, int]:
    with torch.device("meta"):
        model = ShuffleNetV1(groups, width_mult, **kwargs)  # type: ignore[arg-type]
    return count_params(model), count_macs(model, (3, 224, 224))


def _agrees(count: int, printed: float, digit: float) -> bool:
    """Within 2% of a printed figure, or within the rounding of its last printed ``digit``."""
    return abs(count - printed) <= max(0.02 * printed, 0.5 * digit)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_registered_models_match_the_paper(name: str) -> None:
    groups, width, params, macs_m, top1 = PAPER[name]
    info = model_info(name)
    assert (info.macs, info.top1, info.width_mult) == (macs_m * 1_000_000, top1, width)
    built_params, built_macs = _counts(groups, width)
    assert built_macs == pytest.approx(macs_m * 1e6, rel=0.02)
    assert built_params == info.params
    if params is not None:
        assert built_params == params


@pytest.mark.parametrize(("groups", "width", "macs_m", "params_m"), RELEASE)
def test_widths_match_the_reference_release(
    groups: int, width: float, macs_m: int, params_m: float
) -> None:
    assert RELEASE_CHANNELS[groups, width] == (
        shufflenet_v1_stages(groups, width)[0],
        *(s.c for s in shufflenet_v1_stages(groups, width)[1]),
    )
    params, macs = _counts(groups, width)
    assert _agrees(macs, macs_m * 1e6, 1e6)
    # the release's FC has no bias (1000 fewer), far below its 0.1M rounding
    assert _agrees(params, params_m * 1e6, 1e5)


def test_quarter_width_matches_table_2() -> None:
    # Table 2: ShuffleNet 0.25x at 13 MFLOPs; conv1 stays 12 (a halved 6 would give 11.0M).
    assert shufflenet_v1_stages(3, 0.25)[0] == 12
    _, macs = _counts(3, 0.25)
    assert _agrees(macs, 13e6, 1e6)


def test_se_layer_sits_on_every_branch() -> None:
    # SE (r = 16) on each unit's branch: out - in channels at stride 2, out at stride 1.
    stem, stages = shufflenet_v1_stages(3, 1.0)
    branches, in_chs = [], stem
    for stage in stages:
        branches += [stage.c - in_chs] + [stage.c] * (stage.n - 1)
        in_chs = stage.c
    se_weights = sum(2 * c * (c // 16) for c in branches)
    se_biases = sum(c + c // 16 for c in branches)
    base_params, base_macs = _counts(3, 1.0)
    params, macs = _counts(3, 1.0, se_layer=SqueezeExcite)
    assert params == base_params + se_weights + se_biases
    assert macs == base_macs + se_weights  # the SE FCs run on a 1x1 map
    # ARCHITECTURES.md: a faithful SE-ShuffleNet 1x (g=3) lands near 2.48M (SENet's "2.4M")
    assert round(params / 1e6, 2) == 2.48


def test_channel_shuffle_matches_a_hand_made_permutation() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    # g=3 groups (0 1) (2 3) (4 5): take one channel from each group in turn
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    x = torch.randn(2, 24, 3, 3)
    for g in (1, 2, 3, 4, 8):
        perm = [(j % g) * (24 // g) + j // g for j in range(24)]
        assert torch.equal(channel_shuffle(x, g), x[:, perm])


def _branch_inputs(unit: ShuffleUnit, in_chs: int, out_channel: int) -> set[int]:
    """Input channels that branch output ``out_channel`` depends on (gradient support)."""
    x = torch.randn(1, in_chs, 6, 6, requires_grad=True)
    branch = unit.conv3(unit.conv2(unit.shuffle(unit.conv1(x))))
    branch[0, out_channel].sum().backward()
    assert x.grad is not None
    return set(torch.nonzero(x.grad.abs().sum((0, 2, 3))).flatten().tolist())


def test_shuffle_lets_every_group_see_every_input_group() -> None:
    # g=3, bottleneck 9: the shuffle hands output group 0 one channel of each input group
    unit = ShuffleUnit(36, 36, stride=1, groups=3).eval()
    assert _branch_inputs(unit, 36, 0) == set(range(36))
    # the same unit without the shuffle stays inside group 0 (channels 0-11): the test can fail
    unit.shuffle = nn.Identity()
    assert _branch_inputs(unit, 36, 0) == set(range(12))


@pytest.mark.parametrize("stride", [1, 2])
def test_unit_forward_follows_fig_2(stride: int) -> None:
    # An oracle written in functional ops from the unit's own weights: GConv-BN-ReLU, shuffle,
    # DWConv-BN (no ReLU), GConv-BN, SE, then ReLU after the add or the concat.
    in_chs, out_chs, g = (24, 24, 3) if stride == 1 else (24, 60, 3)
    unit = ShuffleUnit(in_chs, out_chs, stride, g, se_layer=SqueezeExcite).eval()
    for m in unit.modules():  # non-trivial statistics so every BN matters
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.running_mean, -0.5, 0.5)
            nn.init.uniform_(m.running_var, 0.5, 1.5)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)

    def conv_bn(seq: nn.Module, x: torch.Tensor) -> torch.Tensor:
        conv, bn = seq[0], seq[1]
        x = F.conv2d(x, conv.weight, None, conv.stride, conv.padding, 1, conv.groups)
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0, 1e-5)

    x = torch.randn(2, in_chs, 8, 8)
    y = channel_shuffle(F.relu(conv_bn(unit.conv1, x)), g)
    y = conv_bn(unit.conv3, conv_bn(unit.conv2, y))
    se = unit.se
    s = torch.sigmoid(se.fc2(F.relu(se.fc1(y.mean((2, 3), keepdim=True)))))
    y = y * s
    shortcut = F.avg_pool2d(x, 3, 2, 1) if stride == 2 else x
    expected = F.relu(torch.cat([shortcut, y], 1) if stride == 2 else shortcut + y)
    with torch.no_grad():
        assert torch.allclose(unit(x), expected, atol=1e-5)


@pytest.mark.parametrize("groups", [2, 3, 4, 8])
def test_first_pointwise_is_not_grouped(groups: int) -> None:
    with torch.device("meta"):
        model = shufflenet_v1(groups=groups)
    units = [u for u in model.stages if isinstance(u, ShuffleUnit)]
    outs = [s.c for s in shufflenet_v1_stages(groups)[1] for _ in range(s.n)]
    assert len(units) == len(outs) == 16
    first = units[0].conv1[0]
    assert (first.in_channels, first.groups) == (24, 1)
    assert all(u.conv1[0].groups == groups for u in units[1:])
    assert all(u.conv3[0].groups == groups for u in units)
    # the bottleneck is a quarter of the unit's output
    assert [u.conv1[0].out_channels * 4 for u in units] == outs


@pytest.mark.parametrize("groups", [1, 3, 8])
def test_stride_2_units_concat_pooled_shortcut_and_out_minus_in_branch(groups: int) -> None:
    stem, stages = shufflenet_v1_stages(groups, 1.0)
    model = shufflenet_v1(groups=groups).eval()
    units = [u for u in model.stages if isinstance(u, ShuffleUnit)]
    heads = [units[0], units[4], units[12]]  # first unit of Stages 2, 3, 4
    ins = [stem, stages[0].c, stages[1].c]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        x = model.stem(x)
        for i, unit in enumerate(units):
            y = unit(x)
            if unit in heads:
                k = heads.index(unit)
                assert unit.conv3[0].out_channels == stages[k].c - ins[k]
                assert unit.conv2[0].out_channels == stages[k].c // 4
                assert y.shape[1] == stages[k].c and y.shape[2] == (x.shape[2] + 1) // 2
                # the first in_chs channels are the (ReLU'd) average-pooled input
                assert torch.allclose(y[:, : ins[k]], F.relu(F.avg_pool2d(x, 3, 2, 1)))
            else:
                assert unit.stride == 1 and y.shape == x.shape, f"unit {i}"
            x = y


def test_small_input_keeps_resolution() -> None:
    x = torch.randn(1, 1, 28, 28)
    default = create_model("shufflenet_v1_g3_100", num_classes=10, in_chans=1).eval()
    small = create_model("shufflenet_v1_g3_100", num_classes=10, in_chans=1, small_input=True)
    with torch.no_grad():
        assert default.forward_features(x).shape == (1, 960, 1, 1)
        assert small.eval().forward_features(x).shape == (1, 960, 4, 4)
    # same weights either way: small_input changes strides and pooling only
    assert count_params(small) == count_params(default)
    assert "stride 1" in model_info("shufflenet_v1_g3_100").small_input


def test_width_and_groups_keywords() -> None:
    with torch.device("meta"):
        scaled = create_model("shufflenet_v1_g3_100", width_mult=0.5)
        half = create_model("shufflenet_v1_g3_050")
        g8 = shufflenet_v1(groups=8)
    assert count_params(scaled) == count_params(half) == model_info("shufflenet_v1_g3_050").params
    assert count_params(g8) == 2_434_768
    with pytest.raises(ValueError, match="groups must be one of"):
        shufflenet_v1(groups=5)
    with pytest.raises(TypeError):
        create_model("shufflenet_v1_g3_100", groups=3)
    # any width builds with groups that divide every grouped layer
    for width in (0.3, 0.75, 1.25, 3.0):
        for g in (1, 2, 3, 4, 8):
            with torch.device("meta"):
                shufflenet_v1(groups=g, width_mult=width)
