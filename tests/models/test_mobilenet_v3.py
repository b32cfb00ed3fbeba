"""MobileNetV3 (Howard et al. 2019): Tables 1-2 as built, SE and head details, key mapping."""

from __future__ import annotations

import torch
from torch import nn

from pocketvision import create_model
from pocketvision.layers import SqueezeExcite
from pocketvision.models.mobilenet_v3 import (
    MOBILENET_V3_LARGE,
    MOBILENET_V3_SMALL,
    torchvision_key,
)


def test_tables_have_the_papers_shape() -> None:
    assert len(MOBILENET_V3_LARGE) == 15 and len(MOBILENET_V3_SMALL) == 11
    assert sum(r.se for r in MOBILENET_V3_LARGE) == 8
    assert sum(r.se for r in MOBILENET_V3_SMALL) == 9
    # total stride 32: five stride-2 layers with the stem
    assert sum(r.s == 2 for r in MOBILENET_V3_LARGE) == 4
    assert sum(r.s == 2 for r in MOBILENET_V3_SMALL) == 4


def test_se_squeezes_to_a_quarter_rounded_to_8_with_hard_sigmoid() -> None:
    model = create_model("mobilenet_v3_large_100")
    ses = [m for m in model.modules() if isinstance(m, SqueezeExcite)]
    assert [se.fc1.out_channels for se in ses] == [24, 32, 32, 120, 168, 168, 240, 240]
    assert all(isinstance(se.gate, nn.Hardsigmoid) for se in ses)
    # the first Small bneck squeezes 16 -> 8 (16 / 4 = 4, rounded up to the divisor)
    small = create_model("mobilenet_v3_small_100")
    assert next(m for m in small.modules() if isinstance(m, SqueezeExcite)).fc1.out_channels == 8


def test_squeeze_excite_default_is_unchanged() -> None:
    se = SqueezeExcite(64)
    assert se.fc1.out_channels == 4 and isinstance(se.gate, nn.Sigmoid)


def test_head_widths_and_feature_map() -> None:
    large = create_model("mobilenet_v3_large_100").eval()
    small = create_model("mobilenet_v3_small_075").eval()
    assert (large.num_features, large.head.pre.out_features) == (960, 1280)
    assert (small.num_features, small.head.pre.out_features) == (432, 768)
    with torch.no_grad():
        assert large.forward_features(torch.randn(1, 3, 224, 224)).shape == (1, 960, 7, 7)
        pre = large.forward_head(torch.randn(1, 960, 7, 7), pre_logits=True)
    assert pre.shape == (1, 1280)


def test_first_bneck_has_no_expand_conv_and_residuals_follow_the_rule() -> None:
    model = create_model("mobilenet_v3_large_100")
    assert len(model.blocks[0].block) == 2  # depthwise, projection
    assert [b.use_residual for b in model.blocks].count(True) == 10


def test_torchvision_keys_cover_every_parameter() -> None:
    # torchvision's layout, written out: features.0 stem, 1..15 bnecks, 16 the 6x conv
    model = create_model("mobilenet_v3_large_100")
    ours = set(model.state_dict())
    reference = {"features.0.0.weight", "features.1.block.0.0.weight"}
    reference |= {"features.16.1.running_var", "classifier.0.weight", "classifier.3.bias"}
    reference |= {"features.4.block.2.fc1.weight", "features.15.block.3.1.num_batches_tracked"}
    assert {torchvision_key(k, 15) for k in reference} <= ours
    assert torchvision_key("features.16.0.weight", 15) == "conv_head.0.weight"
