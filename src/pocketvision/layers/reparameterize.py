"""Structural re-parameterisation: train-time branches folded into one conv for deployment.

RepVGG (Ding et al. 2021) and MobileOne (Vasu et al. 2023) train each block as a sum of
conv-BN branches. In eval mode every branch is linear in its input, so the sum is one
convolution: each branch's BN folds into its kernel and a bias, a 1x1 branch is a kxk kernel
zero everywhere but its centre, and a BN-only skip is the identity kernel scaled by the BN.
Summing the kernels and the biases gives the inference-time block.

:func:`deploy_form` is the one place export, profile and serve turn a model into what runs on
the device: a copy with every ``reparameterize()`` applied. Models without one pass through
unchanged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def fuse_conv_bn(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of a bias-free conv followed by eval-mode BN, in float64.

    ``BN(W * x) = g * (W * x - m) / s + b`` with ``s = sqrt(var + eps)``: the kernel
    ``W * g / s`` (per output channel) and the bias ``b - m * g / s``. Computed in float64
    so that summing branches rounds once, when the caller stores the result.
    """
    if bn.running_mean is None or bn.running_var is None or bn.weight is None:
        raise ValueError("fuse_conv_bn needs an affine BatchNorm with running statistics")
    wide = torch.float64
    scale = bn.weight.to(wide) / torch.sqrt(bn.running_var.to(wide) + bn.eps)  # (C,)
    kernel = weight.to(wide) * scale.reshape(-1, 1, 1, 1)
    return kernel, bn.bias.to(wide) - bn.running_mean.to(wide) * scale


def identity_kernel(
    channels: int, groups: int, kernel_size: int, like: torch.Tensor
) -> torch.Tensor:
    """The (channels, channels / groups, k, k) kernel of a grouped conv that computes x.

    Output channel ``i`` reads input ``i % (channels / groups)`` of its own group: 1 at the
    kernel's centre, 0 elsewhere.
    """
    per_group = channels // groups
    eye = torch.eye(per_group, dtype=like.dtype, device=like.device).repeat(groups, 1)
    pad = kernel_size // 2
    return nn.functional.pad(eye.reshape(channels, per_group, 1, 1), [pad] * 4)


def _reparameterizable(module: nn.Module) -> bool:
    return callable(getattr(module, "reparameterize", None))


def deploy_form(model: nn.Module) -> nn.Module:
    """``model`` as it runs on a device: train-time branches folded, in eval mode.

    A model with a ``reparameterize()`` method (or with submodules that have one) is deep
    copied, put in eval mode (folding uses the BN running statistics) and re-parameterised;
    the original keeps training. Any other model is returned as it is, not copied.
    """
    if not any(_reparameterizable(m) for m in model.modules()):
        return model
    deployed = copy.deepcopy(model).eval()
    for module in list(deployed.modules()):  # outermost first; a second call is a no-op
        fold = getattr(module, "reparameterize", None)
        if callable(fold):
            fold()
    return deployed
