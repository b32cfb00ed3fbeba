"""NASNet-A: cell wiring, factorized reduction and parameter counts against hand arithmetic.

The registry-wide tests (tests/test_models.py) hold the whole model to Table 3 (5,289,978
params, 564M MACs); these pin the parts, so a wrong count says where it comes from.
"""

from __future__ import annotations

import math

import pytest
import torch

from pocketvision import create_model
from pocketvision.models.nasnet import (
    NASNET_A_NORMAL,
    NASNET_A_REDUCTION,
    Cell,
    FactorizedReduction,
    NASNet,
)
from pocketvision.profile import count_params

EPS = 1e-3  # the model's BN epsilon (TF-slim's)


def sep(in_chs: int, f: int, k: int) -> int:
    """Params of a separable op: (dw k x k on in, pw in->F, BN F) then (dw F, pw F->F, BN F)."""
    return (in_chs * k * k + in_chs * f + 2 * f) + (f * k * k + f * f + 2 * f)


def conv_bn(in_chs: int, f: int) -> int:
    """Params of ReLU -> 1x1 conv (no bias) -> BN."""
    return in_chs * f + 2 * f


@pytest.fixture(scope="module")
def mobile() -> NASNet:
    model = create_model("nasnet_a_mobile")
    assert isinstance(model, NASNet)
    return model


def test_stem_conv_params(mobile: NASNet) -> None:
    assert count_params(mobile.stem) == 3 * 32 * 3 * 3 + 2 * 32  # 928: conv 3x3, BN 32


def test_cell_params_match_hand_counts(mobile: NASNet) -> None:
    # cells: stem_0, stem_1, then 4 normal, reduction, 4 normal, reduction, 4 normal
    stem0, first, normal, reduction = (mobile.cells[i] for i in (0, 2, 3, 6))
    # stem cell 0 (F=11): h_i is the 32-channel stem output; h_{i-1} is that same output,
    # unadjusted, so the separable ops reading it start from 32 channels.
    assert count_params(stem0) == (
        conv_bn(32, 11) + sep(11, 11, 5) + sep(32, 11, 7) * 2 + sep(32, 11, 5) + sep(11, 11, 3)
    )
    assert count_params(stem0) == 8_534
    # cell_1 (F=44): h_i 264 channels, h_{i-1} 88; ops 2x sep5, 3x sep3, pools and identities free
    assert count_params(normal) == conv_bn(264, 44) + conv_bn(88, 44) + 2 * sep(
        44, 44, 5
    ) + 3 * sep(44, 44, 3)
    assert count_params(normal) == 42_680
    # cell_0: h_{i-1} (stem cell 0's 44 channels) has twice the resolution: two 1x1 convs of
    # F/2 and one BN of F instead of a 1x1 conv
    assert count_params(first) == conv_bn(88, 44) + 2 * 44 * 22 + 2 * 44 + 2 * sep(
        44, 44, 5
    ) + 3 * sep(44, 44, 3)
    assert count_params(first) == 33_000
    # reduction_cell_0 (F=88): both inputs 264 channels; 2x sep5, 2x sep7, 1x sep3
    assert count_params(reduction) == 2 * conv_bn(264, 88) + 2 * sep(88, 88, 5) + 2 * sep(
        88, 88, 7
    ) + sep(88, 88, 3)
    assert count_params(reduction) == 153_648


def test_stack_widths_follow_1056_over_24(mobile: NASNet) -> None:
    widths = [cell.out_chs for cell in mobile.cells]
    f = 1056 // 24
    # stem cells 4 * F/4, 4 * F/2; normal 6F; reduction 4 * 2F; ... ; 6 * 4F = 1056
    assert widths == [
        *(44, 88),
        *[6 * f] * 4,
        4 * 2 * f,
        *[6 * 2 * f] * 4,
        4 * 4 * f,
        *[6 * 4 * f] * 4,
    ]
    assert mobile.num_features == 1056


@pytest.mark.parametrize("prev_reduce", [False, True])
def test_normal_cell_outputs_6f_with_h_prev_first(prev_reduce: bool) -> None:
    f, size = 8, 6
    cell = Cell(NASNET_A_NORMAL, in_chs=24, prev_chs=16, out_chs=f, prev_reduce=prev_reduce)
    cell.eval()
    x = torch.randn(2, 24, size, size)
    x_prev = torch.randn(
        2, 16, size * 2 if prev_reduce else size, size * 2 if prev_reduce else size
    )
    with torch.no_grad():
        out = cell(x, x_prev)
        adjusted = cell.adjust_prev(x_prev)
    assert out.shape == (2, 6 * f, size, size)
    # Fig. 4: the adjusted h_{i-1} is the first of the six concatenated states
    assert torch.equal(out[:, :f], adjusted)


def test_reduction_cell_outputs_4f_at_half_resolution() -> None:
    f = 8
    cell = Cell(NASNET_A_REDUCTION, in_chs=24, prev_chs=24, out_chs=f, prev_reduce=False).eval()
    with torch.no_grad():
        out = cell(torch.randn(2, 24, 7, 7), torch.randn(2, 24, 7, 7))
    assert out.shape == (2, 4 * f, 4, 4)  # ceil(7 / 2), like every stride-2 op with k // 2 pad


def test_genotypes_only_read_earlier_states() -> None:
    for genotype in (NASNET_A_NORMAL, NASNET_A_REDUCTION):
        for b, combination in enumerate(genotype.combinations):
            assert all(branch.input < 2 + b for branch in combination)
        assert all(i < 2 + len(genotype.combinations) for i in genotype.concat)


@pytest.mark.parametrize("size", [5, 6])
def test_factorized_reduction_samples_even_then_shifted_odd_pixels(size: int) -> None:
    fr = FactorizedReduction(1, 2).eval()
    with torch.no_grad():
        fr.path1.weight.fill_(1.0)
        fr.path2.weight.fill_(1.0)
        x = torch.arange(1.0, size * size + 1).view(1, 1, size, size)
        out = fr(x)
    half = math.ceil(size / 2)
    assert out.shape == (1, 2, half, half)
    scale = 1 / math.sqrt(1 + EPS)  # fresh BN in eval: (x - 0) / sqrt(1 + eps)
    torch.testing.assert_close(out[0, 0], x[0, 0, 0::2, 0::2] * scale)
    # path 2 sees the map moved up-left by one pixel, zeros past the bottom-right edge
    shifted = torch.zeros(half, half)
    odd = x[0, 0, 1::2, 1::2]
    shifted[: odd.shape[0], : odd.shape[1]] = odd
    torch.testing.assert_close(out[0, 1], shifted * scale)


def test_factorized_reduction_rejects_odd_filters() -> None:
    with pytest.raises(ValueError, match="even"):
        FactorizedReduction(4, 5)


def test_small_input_keeps_params_and_reaches_2x2() -> None:
    model = create_model("nasnet_a_mobile", in_chans=1, num_classes=10, small_input=True)
    assert count_params(model) == count_params(
        create_model("nasnet_a_mobile", in_chans=1, num_classes=10)
    )
    with torch.no_grad():
        feats = model.eval().forward_features(torch.randn(1, 1, 28, 28))
    assert feats.shape == (1, 1056, 2, 2)


def test_other_n_at_p_sizes_and_bad_sizes() -> None:
    model = create_model("nasnet_a_mobile", num_cells=1, penultimate_filters=480, num_classes=3)
    assert model.num_features == 480
    assert len(model.cells) == 2 + 3 + 2  # two stem cells, one normal per stack, two reductions
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    with pytest.raises(ValueError, match="multiple of 96"):
        create_model("nasnet_a_mobile", penultimate_filters=1000)
    with pytest.raises(TypeError):
        create_model("nasnet_a_mobile", width_mult=0.5)
