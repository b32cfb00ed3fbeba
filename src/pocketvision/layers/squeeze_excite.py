"""Squeeze-and-excitation (Hu et al. 2018, Fig. 2-3), pluggable into any residual branch."""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """Global average pool -> FC (C -> C/r) -> ReLU -> FC (C/r -> C) -> sigmoid -> rescale.

    The two FC layers are 1x1 convolutions on the pooled (N, C, 1, 1) tensor, which keeps the
    graph 4-D for mobile converters; parameters are identical to Linear layers.

    Args:
        channels: C.
        reduction: r (the paper uses 16).
        hidden_chs: The squeezed width, overriding ``channels // reduction`` (MobileNetV3
            rounds ``C / 4`` to a multiple of 8).
        gate_layer: The gate (MobileNetV3 uses ``nn.Hardsigmoid``).
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        *,
        hidden_chs: int | None = None,
        gate_layer: type[nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        hidden = hidden_chs if hidden_chs is not None else max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (N, C, 1, 1)
        s = self.gate(self.fc2(self.act(self.fc1(s))))
        return x * s
