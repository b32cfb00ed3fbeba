"""Every converter held to the key names and shapes of its source's real files.

The manifests were written by ``make parity`` from torchvision 0.29.1 and timm 1.0.31
models; here each one is planned onto our model built on the meta device (no tensors, no
torchvision), at the published layout and at the adaptations a user asks for.
"""

from __future__ import annotations

import pytest
import torch
from weights_support import MANIFESTS, manifest

import pocketvision as pv
from pocketvision.registry import model_info
from pocketvision.weights.load import Target, canonical_to_model, plan
from pocketvision.weights.table import CHECKPOINTS, checkpoints


def _plan(ckpt, **kwargs):  # type: ignore[no-untyped-def]
    with torch.device("meta"):
        model = pv.create_model(ckpt.model, **kwargs)
        canonical = pv.create_model(ckpt.model, **{**kwargs, "small_input": False})
    info = model_info(ckpt.model)
    target = Target(ckpt.model, info.first_conv, info.classifier, lambda: canonical)
    source = {k: tuple(s) for k, s in manifest(ckpt.layout, ckpt.source_name)["keys"]}
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    rename = canonical_to_model(canonical, model)
    return source, plan(source, shapes, target, [ckpt.layout], rename)[1]


def test_every_row_has_a_manifest_and_every_manifest_a_row() -> None:
    names = {f"{c.layout}.{c.source_name}.json" for c in CHECKPOINTS}
    assert names == {p.name for p in MANIFESTS.glob("*.json")}


@pytest.mark.parametrize("ckpt", CHECKPOINTS, ids=lambda c: f"{c.model}.{c.tag}")
def test_converter_maps_every_tensor_one_to_one(ckpt) -> None:  # type: ignore[no-untyped-def]
    source, steps = _plan(ckpt)
    assert {how for _, how in steps.values()} == {"copy"}
    used = [src for src, _ in steps.values()]
    assert len(used) == len(set(used)) == len(source)  # each file tensor used exactly once


@pytest.mark.parametrize(
    "ckpt",
    checkpoints("resnet18")
    + checkpoints("vgg11_bn")
    + checkpoints("mobilenet_v2_050")
    + checkpoints("squeezenet1_0"),
    ids=lambda c: c.model,
)
def test_adaptations_are_planned_where_asked(ckpt) -> None:  # type: ignore[no-untyped-def]
    info = model_info(ckpt.model)
    _, steps = _plan(ckpt, num_classes=10, in_chans=1, small_input=True)
    hows = {key: how for key, (_, how) in steps.items()}
    first = f"{info.first_conv}.weight"
    assert hows[first] == ("crop+in_chans" if ckpt.model == "resnet18" else "in_chans")
    assert hows[f"{info.classifier}.weight"] == hows[f"{info.classifier}.bias"] == "skip"
    if ckpt.model == "vgg11_bn":
        assert [k for k, h in hows.items() if h == "fold"] == ["pre_logits.0.weight"]
    others = {
        h for k, h in hows.items() if not k.startswith((first, info.classifier, "pre_logits.0.w"))
    }
    assert others == {"copy"}  # small_input keeps every other weight
