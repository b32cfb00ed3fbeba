"""Optimiser parameter groups, the learning-rate schedule and the EMA of weights."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from pocketvision.train.config import TrainConfig


def param_groups(
    model: nn.Module, config: TrainConfig, head_ids: set[int], transfer: bool
) -> list[dict]:
    """Parameter groups: no weight decay on norms and biases (1-D tensors); a lower backbone
    learning rate when fine-tuning from --init.

    Each group carries ``base_lr``, the peak the schedule scales.
    """
    assert config.lr is not None and config.weight_decay is not None
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        key = (id(p) in head_ids, p.ndim > 1)
        groups.setdefault(key, []).append(p)
    out = []
    for (is_head, decay), params in sorted(groups.items()):
        scale = 1.0 if is_head or not transfer else config.backbone_lr_scale
        lr = config.lr * scale
        out.append(
            {
                "params": params,
                "lr": lr,
                "base_lr": lr,
                "weight_decay": config.weight_decay if decay else 0.0,
            }
        )
    return out


def build_optimizer(groups: list[dict], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=config.momentum, nesterov=True)
    return torch.optim.AdamW(groups, betas=(0.9, 0.999))


def lr_factor(step: int, total: int, config: TrainConfig, steps_per_epoch: int) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` of ``total``.

    onecycle: linear rise from 1/25 of the peak over the first 25% of steps, then cosine
    down to zero (Smith & Topin 2019, the shape of torch's OneCycleLR). cosine: linear warmup
    for ``warmup_epochs``, then cosine to zero (Loshchilov & Hutter 2017, without restarts).
    """
    if config.schedule == "onecycle":
        warm = max(1, round(0.25 * total))
        start = 1 / 25
    else:
        warm = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
        start = 0.0
    if step < warm:
        return start + (1 - start) * step / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


class EMA:
    """Exponential moving average of a model's weights (Polyak averaging); buffers copied.

    The decay warms up as min(decay, (1 + step) / (10 + step)) so early weights do not stick.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        ema_p: list[torch.Tensor] = list(self.module.parameters())
        new_p: list[torch.Tensor] = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_p, new_p, 1 - d)
        for b_ema, b in zip(self.module.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
