"""Parameter and MAC counts.

MACs are counted by :class:`torch.utils.flop_counter.FlopCounterMode`, which reports 2 FLOPs
per multiply-accumulate of convolutions and matrix products; we divide by 2. Pooling,
activations, normalization and element-wise ops are not counted, as in the papers.

Both count the model as deployed (:func:`pocketvision.layers.deploy_form`): a
re-parameterisable model (MobileOne) in its fused inference form, which is what its paper
reports and what export, profile and serve run; ``deployed=False`` counts the module as it is
(the train-time branches included).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pocketvision.layers.reparameterize import deploy_form


def count_params(model: nn.Module, trainable_only: bool = False, deployed: bool = True) -> int:
    """Parameters as PyTorch counts them: BN affine included, running statistics excluded.

    Args:
        deployed: Count the inference form (see the module docstring); not with
            ``trainable_only``, which asks about the train form.
    """
    if deployed and not trainable_only:
        model = deploy_form(model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(
    model: nn.Module, input_size: Sequence[int], batch_size: int = 1, deployed: bool = True
) -> int:
    """Multiply-accumulates of conv and linear layers for one forward pass.

    Parameters and buffers are swapped for meta tensors (torch.func.functional_call), so no
    real computation runs, nothing is copied, and the count is fast even for VGG at 224 px.

    Args:
        model: Any module taking one (N, C, H, W) tensor.
        input_size: (C, H, W).
        batch_size: N (MACs scale linearly with it).
        deployed: Count the inference form (see the module docstring).
    """
    if len(input_size) != 3:
        raise ValueError(f"input_size must be (C, H, W), got {tuple(input_size)}")
    if deployed:
        model = deploy_form(model)
    tensors = {
        name: torch.empty_like(t, device="meta")
        for name, t in [*model.named_parameters(), *model.named_buffers()]
    }
    x = torch.empty((batch_size, *input_size), device="meta")
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.no_grad():
            torch.func.functional_call(model, tensors, (x,))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2
