"""VGG against Simonyan & Zisserman 2014, Tables 1-2. Everything is built on the meta device."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pocketvision import create_model
from pocketvision.models.vgg import VGG
from pocketvision.profile import count_params


def _meta(name: str, **kwargs: object) -> VGG:
    with torch.device("meta"):
        model = create_model(name, **kwargs)
    assert isinstance(model, VGG)
    return model


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


# Table 1: config A is 8 conv + 3 FC = 11 weight layers, D is 13 + 3 = 16; Table 2: 133M, 138M.
@pytest.mark.parametrize(
    ("name", "convs", "millions"),
    [("vgg11", 8, 133), ("vgg11_bn", 8, 133), ("vgg16", 13, 138), ("vgg16_bn", 13, 138)],
)
def test_weight_layers_and_table2_params(name: str, convs: int, millions: int) -> None:
    model = _meta(name)
    assert len(_convs(model)) == convs and len(_linears(model)) == 3
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in _convs(model))
    assert round(count_params(model) / 1e6) == millions


def test_vgg16_fc_layers_hold_123_6m_of_138_4m_params() -> None:
    model = _meta("vgg16")
    fc = sum(count_params(m) for m in _linears(model))
    assert fc == 123_642_856  # 25088*4096 + 4096*4096 + 4096*1000 + biases
    assert count_params(model.features) == 14_714_688
    assert [(m.in_features, m.out_features) for m in _linears(model)] == [
        (512 * 7 * 7, 4096),
        (4096, 4096),
        (4096, 1000),
    ]
    assert fc / count_params(model) == pytest.approx(0.894, abs=0.001)


def test_vgg16_stack_outputs_follow_table1_at_224() -> None:
    model = _meta("vgg16")
    x = torch.empty(1, 3, 224, 224, device="meta")
    sides = []
    for m in model.features:
        x = m(x)
        if isinstance(m, nn.MaxPool2d):
            sides.append((x.shape[1], x.shape[2]))
    assert sides == [(64, 112), (128, 56), (256, 28), (512, 14), (512, 7)]
    # at 224 px the adaptive 7x7 pool is the identity
    assert model.pool(x).shape == x.shape


def test_bn_variants_add_one_batchnorm_per_conv_and_keep_the_bias() -> None:
    plain, bn = _meta("vgg16"), _meta("vgg16_bn")
    norms = [m for m in bn.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == len(_convs(bn)) == 13
    assert all(c.bias is not None for c in _convs(bn))
    assert count_params(bn) - count_params(plain) == 2 * sum(n.num_features for n in norms)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())


def test_dropout_follows_both_fc4096_layers() -> None:
    model = _meta("vgg11", drop_rate=0.3)
    kinds = [type(m).__name__ for m in model.pre_logits]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout"]
    assert all(m.p == 0.3 for m in model.pre_logits if isinstance(m, nn.Dropout))


def test_small_input_drops_the_first_pool_and_pools_to_1x1() -> None:
    model = _meta("vgg16", in_chans=1, num_classes=10, small_input=True)
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 4
    feats = model.forward_features(torch.empty(2, 1, 28, 28, device="meta"))
    assert feats.shape == (2, 512, 1, 1)
    assert model.forward_head(feats).shape == (2, 10)
    assert _linears(model)[0].in_features == 512
    convs = 14_714_688 - 2 * 64 * 9  # conv1 sees one input channel instead of three
    fcs = (512 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 10
    assert count_params(model) == convs + fcs


def test_width_mult_is_rejected() -> None:
    with pytest.raises(TypeError, match="width_mult"):
        create_model("vgg11", width_mult=0.5)
