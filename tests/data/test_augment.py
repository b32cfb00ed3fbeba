"""Batched augmentation: each transform against what it must equal, and repeatability."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pocketvision.data.augment import (
    PRESETS,
    AugmentPreset,
    augment_batch,
    mix_batch,
    random_affine,
    random_erase,
)
from pocketvision.train.config import AUGMENTS


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(n: int = 16, c: int = 3, size: int = 16) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=_gen(123))


def test_every_preset_is_a_train_option_and_back() -> None:
    # --augment's choices are written out in the torch-free config module: a preset missing
    # there could not be chosen, a name missing here would fail only once training starts
    assert tuple(PRESETS) == AUGMENTS


def test_none_is_identity_and_flip_only_mirrors() -> None:
    x = _batch()
    assert torch.equal(augment_batch(x, PRESETS["none"], _gen()), x)
    flipped = random_affine(x, AugmentPreset(hflip=1.0), _gen())
    torch.testing.assert_close(flipped, x.flip(-1), atol=1e-5, rtol=0)
    assert torch.equal(augment_batch(x, AugmentPreset(hflip=1.0), _gen(), hflip=False), x)
    # the "flip" preset mirrors about half the images exactly and leaves the rest untouched
    out = augment_batch(x, PRESETS["flip"], _gen(3))
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(m != k for m, k in zip(mirrored, kept, strict=True))
    assert 3 <= sum(mirrored) <= 13


def test_translation_is_exact_pad_and_crop() -> None:
    """Every output equals the zero-padded input cropped at some offset within +-pad."""
    x = _batch(n=12, size=16)
    out = random_affine(x, AugmentPreset(translate=0.125), _gen(3))  # pad 2 px
    padded = F.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(x)):
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.allclose(out[i], padded[i, :, dy : dy + 16, dx : dx + 16], atol=1e-5)
        ]
        assert len(matches) == 1, i
        offsets.add(matches[0])
    assert len(offsets) > 3  # offsets differ per sample


def test_same_generator_seed_same_batch_and_values_stay_in_range() -> None:
    x = _batch()
    for name, preset in PRESETS.items():
        a = augment_batch(x, preset, _gen(5))
        b = augment_batch(x, preset, _gen(5))
        assert torch.equal(a, b), name
        assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1, name
    assert not torch.equal(
        augment_batch(x, PRESETS["strong"], _gen(6)), augment_batch(x, PRESETS["strong"], _gen(5))
    )


def test_random_erase_blanks_one_box_of_bounded_area() -> None:
    x = torch.ones(64, 1, 20, 20)
    out = random_erase(x, 1.0, _gen())
    zeros = (out == 0).float().mean(dim=(1, 2, 3))
    # 2-25% of the area, plus up to one pixel per side where the box edges fall between pixels
    assert zeros.min() > 0.0 and zeros.max() <= 0.25 * (1 + 2 / 10) ** 2
    for img in out[:, 0]:
        rows = (img == 0).any(1).nonzero().flatten()
        cols = (img == 0).any(0).nonzero().flatten()
        box = img[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert (box == 0).all()  # one solid rectangle
    assert torch.equal(random_erase(x, 0.0, _gen()), x)


def test_mixup_and_cutmix_targets_match_pixels() -> None:
    n, k = 32, 4
    labels = torch.arange(n) % k
    # image of class c is filled with the value c, so pixel shares reveal the mix
    x = labels.float().view(n, 1, 1, 1).expand(n, 1, 8, 8).clone()
    targets = F.one_hot(labels, k).float()
    seen = set()
    for seed in range(40):
        mixed, soft = mix_batch(x, targets, AugmentPreset(mix=1.0), _gen(seed))
        torch.testing.assert_close(soft.sum(1), torch.ones(n))
        expected = (soft * torch.arange(k).float()).sum(1)  # mean pixel implied by targets
        torch.testing.assert_close(mixed.mean(dim=(1, 2, 3)), expected, atol=1e-4, rtol=0)
        is_cut = bool(((mixed != mixed.round()).sum() == 0) and not torch.equal(mixed, x))
        seen.add(is_cut)
    assert seen == {True, False}  # both mixup and cutmix happened
    same, same_t = mix_batch(x, targets, AugmentPreset(mix=0.0), _gen())
    assert same is x and same_t is targets
