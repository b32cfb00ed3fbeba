"""Schedules, parameter groups and EMA against their definitions."""

from __future__ import annotations

import math

import torch
from torch import nn

import pocketvision
from pocketvision.train import TrainConfig
from pocketvision.train.config import resolve
from pocketvision.train.optim import EMA, param_groups
from pocketvision.train.optim import lr_factor as f


def test_onecycle_and_cosine_shapes() -> None:
    one = resolve(TrainConfig(schedule="onecycle", data="digits"))
    assert f(0, 100, one, 10) == 1 / 25  # starts at lr/25
    assert f(25, 100, one, 10) == 1.0  # peak after 25% of the steps
    assert f(62, 100, one, 10) < 0.6 and f(99, 100, one, 10) < 1e-3  # cosine down to ~0
    assert all(f(s, 100, one, 10) >= f(s + 1, 100, one, 10) for s in range(25, 99))
    cos = resolve(TrainConfig(schedule="cosine", warmup_epochs=2, data="digits"))
    assert f(0, 100, cos, 10) == 0 and f(10, 100, cos, 10) == 0.5 and f(20, 100, cos, 10) == 1
    mid = 20 + (100 - 20) / 2
    assert math.isclose(f(int(mid), 100, cos, 10), 0.5, abs_tol=1e-9)


def test_no_weight_decay_on_norms_and_biases_and_lower_backbone_lr() -> None:
    model = pocketvision.create_model(
        "mobilenet_v2_035", num_classes=5, in_chans=1, small_input=True
    )
    before = {id(p) for p in model.parameters()}
    model.reset_classifier(5)
    head = {id(p) for p in model.parameters()} - before
    config = resolve(TrainConfig(data="digits", lr=0.2, weight_decay=1e-4))
    groups = param_groups(model, config, head, transfer=True)
    for g in groups:
        for p in g["params"]:
            assert (g["weight_decay"] == 0) == (p.ndim <= 1)
            assert g["lr"] == (0.2 if id(p) in head else 0.2 * config.backbone_lr_scale)
    n_bn = sum(1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    no_decay = sum(len(g["params"]) for g in groups if g["weight_decay"] == 0)
    assert no_decay == 2 * n_bn + 1  # BN weight and bias each, plus the classifier bias
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_ema_is_the_exponential_average() -> None:
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=1000)  # warm-up over: decay 0.9
    torch.testing.assert_close(ema.module.weight, start + 0.1)
    ema.update(model, step=0)  # first step: decay min(0.9, 1/10) = 0.1
    torch.testing.assert_close(ema.module.weight, (start + 0.1) * 0.1 + (start + 1) * 0.9)
