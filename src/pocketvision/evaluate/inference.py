"""Batched inference shared by evaluate and predict: uint8 images in, probabilities out."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from pocketvision.preprocess import Preprocessing, normalize


@torch.inference_mode()
def predict_probs(
    model: nn.Module,
    images: NDArray[np.uint8] | torch.Tensor,
    prep: Preprocessing,
    *,
    batch_size: int = 256,
    device: torch.device | None = None,
) -> NDArray[np.float64]:
    """Class probabilities (N, K) for uint8 images (N, C, H, W) already at the input size.

    Normalisation is :func:`pocketvision.preprocess.normalize`, the very function training
    and single-file prediction use, so every path feeds the model identical numbers.
    The softmax runs in float64 so log loss and calibration see no float32 rounding.
    """
    arr = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.ndim != 4 or tuple(arr.shape[1:]) != tuple(prep.input_size) or not arr.shape[0]:
        raise ValueError(f"images must be (N > 0, *{prep.input_size}), got {arr.shape}")
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    out: list[NDArray[np.float64]] = []
    for start in range(0, arr.shape[0], batch_size):
        x = torch.from_numpy(normalize(arr[start : start + batch_size], prep)).to(device)
        logits = model(x).double()
        out.append(torch.softmax(logits, dim=1).cpu().numpy())
    return np.concatenate(out)
