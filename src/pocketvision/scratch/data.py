"""Data for the lessons: scikit-learn's digits, a bundled photo, and reading any image file.

Nothing is downloaded: digits ship with scikit-learn and the photos with scikit-image.
Heavy imports stay inside the functions so ``import pocketvision.scratch`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from pocketvision.errors import PocketvisionError

#: Photos that scikit-image ships inside its wheel (no download needed).
PHOTOS = ("camera", "astronaut", "coffee", "chelsea", "rocket")


class DigitsSplit(NamedTuple):
    """scikit-learn's 8x8 digits, split once with a fixed seed; pixels scaled to [0, 1]."""

    x_train: np.ndarray  # (N, 8, 8) float32
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split(test_size: float = 0.25, seed: int = 0) -> DigitsSplit:
    """The 1,797 digits, stratified into train and test (1,347 / 450 at the defaults)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=test_size, random_state=seed, stratify=digits.target
    )
    return DigitsSplit(x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64))


def upsample_digits(images: np.ndarray, factor: int = 2) -> np.ndarray:
    """(N, 8, 8) -> (N, 1, 8*factor, 8*factor) by repeating pixels, so 5x5 kernels fit twice."""
    big = images.repeat(factor, axis=1).repeat(factor, axis=2)
    return np.ascontiguousarray(big[:, None])


def random_shift(images: np.ndarray, rng: np.random.Generator, max_shift: int = 1) -> np.ndarray:
    """Move each (N, C, H, W) image by up to ``max_shift`` pixels each way, filling with 0.

    A digit drawn a pixel to the left is the same digit: shifted copies teach the network
    that, which a training set of 1,347 images cannot show on its own.
    """
    n, _, h, w = images.shape
    m = max_shift
    padded = np.pad(images, ((0, 0), (0, 0), (m, m), (m, m)))
    dy, dx = rng.integers(0, 2 * m + 1, size=(2, n))
    out = np.empty_like(images)
    for oy in range(2 * m + 1):  # one slice per offset, not per image
        for ox in range(2 * m + 1):
            sel = (dy == oy) & (dx == ox)
            out[sel] = padded[sel, :, oy : oy + h, ox : ox + w]
    return out


def load_photo(name: str = "camera", gray: bool = True) -> np.ndarray:
    """A photo bundled with scikit-image, as uint8 (H, W) or (H, W, 3).

    Raises:
        PocketvisionError: for a name not in :data:`PHOTOS`.
    """
    if name not in PHOTOS:
        raise PocketvisionError(f"unknown photo {name!r}; choose one of {', '.join(PHOTOS)}")
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if gray and image.ndim == 3:
        image = to_gray(image)
    return image


def to_gray(image: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, the weights PIL's "L" mode uses, rounded back to uint8."""
    if image.ndim == 2:
        return image
    luma = image[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)


def read_image(path: str | Path, gray: bool = False) -> np.ndarray:
    """Read an image file as uint8 (H, W) grayscale or (H, W, 3) RGB.

    Raises:
        PocketvisionError: naming the path, if the file is missing or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            mode = "L" if gray or img.mode in ("1", "L", "I", "I;16", "F") else "RGB"
            return np.asarray(img.convert(mode))
    except FileNotFoundError:
        raise PocketvisionError(f"cannot read image {path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PocketvisionError(
            f"cannot read image {path}: not a readable image file ({reason})"
        ) from None


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write a uint8 (H, W) or (H, W, 3) array as an image (format from the suffix)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(path)
    return path
