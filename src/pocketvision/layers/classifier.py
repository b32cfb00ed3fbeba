"""The classifier head most families share: global average pool -> dropout -> linear."""

from __future__ import annotations

import torch
from torch import nn


class ClassifierHead(nn.Module):
    """Global average pool (keepdim, so mobile delegates take the whole graph), dropout, FC.

    Args:
        in_features: Channels of the feature map.
        num_classes: Outputs of the final linear layer.
        drop_rate: Dropout probability before the linear layer.
    """

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.in_features = in_features
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3), keepdim=True).flatten(1)  # (N, C)
        if pre_logits:
            return x
        return self.fc(self.drop(x))

    def reset(self, num_classes: int) -> None:
        """Replace the final linear layer with a freshly initialised one."""
        self.fc = nn.Linear(self.in_features, num_classes)
