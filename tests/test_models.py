"""Registry-wide tests: every registered model obeys the interface and the paper's numbers."""

from __future__ import annotations

import pytest
import torch

from pocketvision import create_model, list_models, model_info
from pocketvision.profile import count_macs, count_params

ALL = list_models()


def _small_size(name: str) -> int:
    # the smallest size that exercises every stage of the default (ImageNet) stem
    return 32 if name.startswith("lenet") else 64


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_forward_shape_and_finite(name: str, in_chans: int) -> None:
    model = create_model(name, num_classes=7, in_chans=in_chans).eval()
    s = _small_size(name)
    with torch.no_grad():
        out = model(torch.randn(2, in_chans, s, s))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    model = create_model(name, num_classes=5, in_chans=3).train()
    s = _small_size(name)
    model(torch.randn(2, 3, s, s)).logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, f"no gradient for {missing[:5]}"


@pytest.mark.parametrize("name", ALL)
def test_features_head_and_reset_classifier(name: str) -> None:
    model = create_model(name, num_classes=10, in_chans=3).eval()
    s = _small_size(name)
    x = torch.randn(1, 3, s, s)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.ndim == 4 and feats.shape[1] == model.num_features
        assert torch.allclose(model.forward_head(feats), model(x), atol=1e-5)
        model.reset_classifier(3)
        assert model(x).shape == (1, 3)


@pytest.mark.parametrize("name", ALL)
def test_params_and_macs_match_the_paper(name: str) -> None:
    info = model_info(name)
    with torch.device("meta"):
        model = create_model(name, num_classes=info.num_classes, in_chans=info.input_size[0])
    assert count_params(model) == info.params
    macs = count_macs(model, info.input_size)
    assert macs == pytest.approx(info.macs, rel=0.02)
    for res, published in info.macs_at:
        at = count_macs(model, (info.input_size[0], res, res))
        assert at == pytest.approx(published, rel=0.02), f"{name} at {res} px"


@pytest.mark.parametrize("name", ALL)
def test_small_input_runs_at_28(name: str) -> None:
    model = create_model(name, num_classes=10, in_chans=1, small_input=True).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_torch_export(name: str) -> None:
    model = create_model(name, num_classes=10, in_chans=3).eval()
    s = _small_size(name)
    x = torch.randn(1, 3, s, s)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        assert torch.allclose(program.module()(x), model(x), atol=1e-5)
