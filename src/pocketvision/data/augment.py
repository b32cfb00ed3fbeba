"""Batched augmentation on tensors: one random affine warp, colour jitter, erasing, mixing.

Every transform acts on a whole float (N, C, H, W) batch in [0, 1] on the training device, with
per-sample random parameters drawn from an explicit generator, so an augmented batch costs a
few tensor ops instead of N PIL calls, and a given (seed, epoch, step) always gives the same
batch (which is what makes --resume exact).

Crop, scale, aspect, translation, rotation and flip are one affine matrix per sample, applied by
a single ``affine_grid`` + ``grid_sample``; an integer translation with zero padding is exactly
pad-and-crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentPreset:
    """Strengths of each transform; 0 turns it off.

    Attributes:
        translate: Pad-and-crop: largest shift as a fraction of the image side (1/8 -> 4 px at 32).
        scale: Random-resized crop: smallest crop area as a fraction of the image (1 = off).
        ratio: Largest aspect-ratio change of that crop (1 = off).
        rotate: Largest rotation in degrees.
        hflip: Probability of a horizontal flip.
        brightness: Largest relative brightness change.
        contrast: Largest relative contrast change.
        saturation: Largest relative saturation change (RGB only).
        erase: Probability of random erasing (one rectangle of 2-25% of the image).
        mix: Probability that a batch is mixed (mixup or cutmix, half each).
        mixup_alpha: Beta(alpha, alpha) for mixup's mixing weight.
        cutmix_alpha: Beta(alpha, alpha) for cutmix's box area.
    """

    translate: float = 0.0
    scale: float = 1.0
    ratio: float = 1.0
    rotate: float = 0.0
    hflip: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    erase: float = 0.0
    mix: float = 0.0
    mixup_alpha: float = 0.2
    cutmix_alpha: float = 1.0


PRESETS: dict[str, AugmentPreset] = {
    "none": AugmentPreset(),
    # horizontal flips only: for short schedules, where any crop or shift already underfits
    "flip": AugmentPreset(hflip=0.5),
    "light": AugmentPreset(translate=0.125, hflip=0.5),
    # light plus random erasing: Zhong et al.'s recipe for Fashion-MNIST / CIFAR, for long
    # schedules on small centred images (no rotation or colour jitter to underfit on)
    "erase": AugmentPreset(translate=0.125, hflip=0.5, erase=0.5),
    "standard": AugmentPreset(
        translate=0.125, rotate=10, hflip=0.5, brightness=0.2, contrast=0.2, erase=0.25
    ),
    "strong": AugmentPreset(
        scale=0.35,
        ratio=4 / 3,
        rotate=15,
        hflip=0.5,
        brightness=0.3,
        contrast=0.3,
        saturation=0.3,
        erase=0.25,
        mix=0.5,
    ),
}


def _uniform(
    n: int, low: float, high: float, gen: torch.Generator, device: torch.device
) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) * (high - low) + low


def random_affine(x: torch.Tensor, p: AugmentPreset, gen: torch.Generator) -> torch.Tensor:
    """Crop / scale / shift / rotate / flip every image of (N, C, H, W) with its own matrix."""
    n, _, h, w = x.shape
    dev = x.device
    if p.translate == 0 and p.scale >= 1 and p.rotate == 0:
        if p.hflip == 0:
            return x
        # flips alone: an exact mirror, no resampling
        flip = torch.rand(n, generator=gen, device=dev) < p.hflip
        return torch.where(flip[:, None, None, None], x.flip(3), x)
    # size of the sampled region as a fraction of the image (random-resized crop)
    area = _uniform(n, p.scale, 1.0, gen, dev) if p.scale < 1 else torch.ones(n, device=dev)
    log_r = math.log(p.ratio)
    aspect = (
        torch.exp(_uniform(n, -log_r, log_r, gen, dev))
        if p.ratio > 1
        else torch.ones(n, device=dev)
    )
    sx = (area * aspect).sqrt().clamp(max=1.0)
    sy = (area / aspect).sqrt().clamp(max=1.0)
    # centre: anywhere the region fits, plus the pad-and-crop shift in whole pixels
    tx = (torch.rand(n, generator=gen, device=dev) * 2 - 1) * (1 - sx)
    ty = (torch.rand(n, generator=gen, device=dev) * 2 - 1) * (1 - sy)
    if p.translate > 0:
        px, py = round(p.translate * w), round(p.translate * h)
        dx = torch.randint(-px, px + 1, (n,), generator=gen, device=dev)
        dy = torch.randint(-py, py + 1, (n,), generator=gen, device=dev)
        tx = tx + dx * (2.0 / w)  # normalised coordinates span 2 over the image
        ty = ty + dy * (2.0 / h)
    angle = _uniform(n, -p.rotate, p.rotate, gen, dev) * (math.pi / 180)
    flip = torch.where(torch.rand(n, generator=gen, device=dev) < p.hflip, -1.0, 1.0)
    cos, sin = angle.cos(), angle.sin()
    # theta maps output coordinates to input coordinates: rotate, scale, flip, then shift
    theta = torch.stack(
        [
            torch.stack([sx * cos * flip, -sy * sin, tx], 1),
            torch.stack([sx * sin * flip, sy * cos, ty], 1),
        ],
        1,
    ).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def color_jitter(x: torch.Tensor, p: AugmentPreset, gen: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast and (RGB) saturation per image, on [0, 1] values."""
    n, c = x.shape[:2]
    dev = x.device
    shape = (n, 1, 1, 1)
    if p.brightness > 0:
        x = x * _uniform(n, 1 - p.brightness, 1 + p.brightness, gen, dev).view(shape)
    if p.contrast > 0:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = torch.lerp(mean, x, _uniform(n, 1 - p.contrast, 1 + p.contrast, gen, dev).view(shape))
    if p.saturation > 0 and c == 3:
        gray = (x * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(
            1, keepdim=True
        )
        x = torch.lerp(
            gray, x, _uniform(n, 1 - p.saturation, 1 + p.saturation, gen, dev).view(shape)
        )
    return x.clamp(0, 1)


def random_erase(x: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Zhong et al. 2017: blank one random rectangle (2-25% of the image) with probability prob.

    Applied after normalisation, so 0 is the data set's mean colour.
    """
    n, _, h, w = x.shape
    dev = x.device
    area = _uniform(n, 0.02, 0.25, gen, dev)
    aspect = torch.exp(_uniform(n, math.log(0.3), math.log(1 / 0.3), gen, dev))
    eh = (area * aspect).sqrt().mul(h).clamp(1, h)
    ew = (area / aspect).sqrt().mul(w).clamp(1, w)
    y0 = torch.rand(n, generator=gen, device=dev) * (h - eh)
    x0 = torch.rand(n, generator=gen, device=dev) * (w - ew)
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    box = (
        (rows >= y0.view(n, 1, 1))
        & (rows < (y0 + eh).view(n, 1, 1))
        & (cols >= x0.view(n, 1, 1))
        & (cols < (x0 + ew).view(n, 1, 1))
    )
    on = (torch.rand(n, generator=gen, device=dev) < prob).view(n, 1, 1)
    return x.masked_fill((box & on)[:, None], 0.0)


def mix_batch(
    x: torch.Tensor, targets: torch.Tensor, p: AugmentPreset, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al. 2018) or CutMix (Yun et al. 2019) of a batch with its own shuffle.

    Args:
        x: (N, C, H, W) inputs.
        targets: (N, K) target distributions (one-hot or smoothed).

    Returns:
        Mixed inputs and the matching mixed target distributions.
    """
    dev = gen.device
    if p.mix <= 0 or torch.rand(1, generator=gen, device=dev).item() >= p.mix:
        return x, targets
    n, _, h, w = x.shape
    perm = torch.randperm(n, generator=gen, device=dev).to(x.device)
    use_cutmix = torch.rand(1, generator=gen, device=dev).item() < 0.5
    alpha = p.cutmix_alpha if use_cutmix else p.mixup_alpha
    lam = _beta_sample(alpha, gen)
    if use_cutmix:
        cut = math.sqrt(1 - lam)
        ch, cw = round(h * cut), round(w * cut)
        cy = int(torch.randint(0, h, (1,), generator=gen, device=dev))
        cx = int(torch.randint(0, w, (1,), generator=gen, device=dev))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the box actually pasted
    else:
        x = torch.lerp(x[perm], x, lam)
    return x, torch.lerp(targets[perm], targets, lam)


def _beta_sample(alpha: float, gen: torch.Generator) -> float:
    """A Beta(alpha, alpha) draw that depends only on ``gen`` (Beta has no generator argument)."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen, device=gen.device))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return float(torch.distributions.Beta(alpha, alpha).sample())


def augment_batch(
    x: torch.Tensor, p: AugmentPreset, gen: torch.Generator, hflip: bool = True
) -> torch.Tensor:
    """Geometric and colour augmentation of a float (N, C, H, W) batch in [0, 1]."""
    if not hflip and p.hflip > 0:
        p = AugmentPreset(**{**p.__dict__, "hflip": 0.0})
    x = random_affine(x, p, gen)
    if p.brightness or p.contrast or p.saturation:
        x = color_jitter(x, p, gen)
    return x
