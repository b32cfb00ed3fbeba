"""SqueezeNet against Iandola et al. 2016, Table 1, layer by layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pocketvision import create_model
from pocketvision.models.squeezenet import Fire, SqueezeNet
from pocketvision.profile import count_macs, count_params

# Table 1: output size (H = W, C) of every layer at the Caffe input size of 227 px (the
# table prints 224 but its 111x111 conv1 needs 227), and the per-layer parameter counts
# ("# parameter before pruning" plus biases, which the total 1,248,424 includes).
TABLE1_V1_0 = [
    # (layer, output side, output channels, params)
    ("conv1", 111, 96, 14_208),
    ("maxpool1", 55, 96, 0),
    ("fire2", 55, 128, 11_920),
    ("fire3", 55, 128, 12_432),
    ("fire4", 55, 256, 45_344),
    ("maxpool4", 27, 256, 0),
    ("fire5", 27, 256, 49_440),
    ("fire6", 27, 384, 104_880),
    ("fire7", 27, 384, 111_024),
    ("fire8", 27, 512, 188_992),
    ("maxpool8", 13, 512, 0),
    ("fire9", 13, 512, 197_184),
]


def _layers(model: SqueezeNet) -> list[nn.Module]:
    # conv1 + its ReLU are one Table 1 row; every other module of `features` is one row.
    mods = list(model.features)
    assert isinstance(mods[0], nn.Conv2d) and isinstance(mods[1], nn.ReLU)
    return [nn.Sequential(mods[0], mods[1]), *mods[2:]]


def test_squeezenet1_0_matches_table1_layer_by_layer() -> None:
    with torch.device("meta"):
        model = create_model("squeezenet1_0")
        x = torch.empty(1, 3, 227, 227)
    layers = _layers(model)
    assert len(layers) == len(TABLE1_V1_0)
    for layer, (name, side, chans, params) in zip(layers, TABLE1_V1_0, strict=True):
        x = layer(x)
        assert tuple(x.shape[1:]) == (chans, side, side), name
        assert count_params(layer) == params, name
    # conv10: 1000 1x1 filters on fire9's 512 channels, 13x13 output, 513,000 params
    assert count_params(model.conv10) == 513_000
    assert model.conv10(x).shape == (1, 1000, 13, 13)


def test_squeezenet1_1_pools_earlier_and_uses_a_3x3_conv1() -> None:
    with torch.device("meta"):
        model = create_model("squeezenet1_1")
    conv1 = model.features[0]
    assert isinstance(conv1, nn.Conv2d)
    assert (conv1.out_channels, conv1.kernel_size, conv1.stride) == (64, (3, 3), (2, 2))
    kinds = ["pool" if isinstance(m, nn.MaxPool2d) else type(m).__name__ for m in model.features]
    # conv1, ReLU, pool, fire2, fire3, pool, fire4, fire5, pool, fire6..fire9
    assert [i for i, k in enumerate(kinds) if k == "pool"] == [2, 5, 8]
    assert all(m.ceil_mode for m in model.features if isinstance(m, nn.MaxPool2d))
    # release notes: 2.4x less computation than 1.0 at the same accuracy (counts on meta)
    with torch.device("meta"):
        v1_0 = create_model("squeezenet1_0")
    ratio = count_macs(v1_0, (3, 224, 224)) / count_macs(model, (3, 224, 224))
    assert ratio == pytest.approx(2.35, abs=0.05)


def test_fire_module_equals_its_definition() -> None:
    # Oracle: squeeze, then 1x1 and padded 3x3 expands concatenated, ReLU after each conv.
    fire = Fire(10, 4, 6, 5)
    x = torch.randn(2, 10, 9, 9)
    s = F.relu(F.conv2d(x, fire.squeeze.weight, fire.squeeze.bias))
    e1 = F.relu(F.conv2d(s, fire.expand1x1.weight, fire.expand1x1.bias))
    e3 = F.relu(F.conv2d(s, fire.expand3x3.weight, fire.expand3x3.bias, padding=1))
    assert torch.allclose(fire(x), torch.cat([e1, e3], 1), atol=1e-6)
    assert fire(x).shape == (2, 11, 9, 9)


def test_head_is_conv10_relu_then_average_pool() -> None:
    model = create_model("squeezenet1_1", num_classes=4).eval()
    feats = torch.rand(2, 512, 3, 3)
    with torch.no_grad():
        logits = model.forward_head(feats)
        expected = F.relu(model.conv10(feats)).mean((2, 3))
        pooled = model.forward_head(feats, pre_logits=True)
    assert torch.allclose(logits, expected, atol=1e-6)
    assert (logits >= 0).all()  # the ReLU before the pool: SqueezeNet scores are never negative
    assert pooled.shape == (2, 512)
    # no fully connected layer anywhere, no batch norm (2016)
    assert not any(isinstance(m, (nn.Linear, nn.BatchNorm2d)) for m in model.modules())


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1"])
def test_small_input_keeps_a_7x7_map_at_28px(name: str) -> None:
    with torch.device("meta"):
        small = create_model(name, in_chans=1, small_input=True)
        default = create_model(name, in_chans=1)
        x = torch.empty(1, 1, 28, 28)
        assert small.forward_features(x).shape == (1, 512, 7, 7)
        assert default.forward_features(x).shape[-1] == 1
    assert small.features[0].stride == (1, 1)
    assert count_params(small) == count_params(default)  # only strides and pools change


def test_width_mult_is_rejected() -> None:
    with pytest.raises(TypeError, match="width_mult"):
        create_model("squeezenet1_0", width_mult=0.5)
