"""Decoding any image file the same way for training, prediction, export checks and serving.

One rule for every path an image takes into a model: apply EXIF orientation (phone photos),
convert grayscale / RGB / RGBA / palette / CMYK / 16-bit to the model's channels, resize to the
input size ("squash"), scale to [0, 1], normalise by mean and std. :class:`Preprocessing` is the record of those choices that a run
keeps in preprocessing.json. This module imports no model code, so data loading does not pull
in the model zoo.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pocketvision.errors import PocketvisionError


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes a model input, identically in training, prediction and export.

    Attributes:
        input_size: (C, H, W); C is 1 (grayscale, PIL mode "L") or 3 (RGB).
        mean: Per-channel mean subtracted after scaling pixels to [0, 1].
        std: Per-channel standard deviation divided by after that.
        resize: "squash" (resize to H x W, ignoring aspect ratio; what training uses).
    """

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str = "squash"

    @property
    def color_mode(self) -> str:
        return "L" if self.input_size[0] == 1 else "RGB"

    @classmethod
    def from_json(cls, data: Any) -> Preprocessing:
        """Parse preprocessing.json's object; ValueError names the field that does not fit."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        missing = [k for k in ("input_size", "mean", "std") if k not in data]
        if missing:
            raise ValueError(f"no {missing[0]!r} field")
        if not all(isinstance(data[k], list) for k in ("input_size", "mean", "std")):
            raise ValueError("input_size, mean and std must be lists of numbers")
        try:
            size = tuple(int(v) for v in data["input_size"])
            mean = tuple(float(v) for v in data["mean"])
            std = tuple(float(v) for v in data["std"])
        except (TypeError, ValueError, OverflowError):
            raise ValueError("input_size, mean and std must be lists of numbers") from None
        resize = data.get("resize", "squash")
        if len(size) != 3 or size[0] not in (1, 3) or min(size[1:]) < 1 or max(size[1:]) > 8192:
            raise ValueError(
                f"input_size must be [1 or 3, H, W] with 1 <= H, W <= 8192, got {list(size)}"
            )
        if len(mean) != size[0] or len(std) != size[0]:
            raise ValueError(f"mean and std need {size[0]} values each (one per channel)")
        if not all(math.isfinite(v) for v in mean) or not all(
            math.isfinite(s) and s > 0 for s in std
        ):
            raise ValueError("mean must be finite and std finite and > 0")
        if resize != "squash":
            raise ValueError(f"unknown resize {resize!r} (only 'squash')")
        return cls(input_size=(size[0], size[1], size[2]), mean=mean, std=std, resize=resize)


# Refuse images over ~90 megapixels outright (PIL warns above 89M and errors at 2x that).
MAX_PIXELS = 90_000_000


class BadImageError(PocketvisionError, ValueError):
    """A file that cannot be used as an image; the message is "FILE: reason", on one line.

    A PocketvisionError (the user's input, CLI exit 2) and, as before, a ValueError.
    """


def _to_mode(img: Image.Image, mode: str) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale to 8 bit by the actual range of the format.
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # composite transparency onto white, as a photo viewer shows it
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert(mode)


def open_image(source: str | Path | bytes, mode: str = "RGB") -> Image.Image:
    """Open, fully decode, orient and convert an image; raise BadImageError with the reason."""
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.is_file():
            raise BadImageError(f"{name}: not a file")
        if path.stat().st_size == 0:
            raise BadImageError(f"{name}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow warns about each odd tag of a malformed file; the reason we raise, or
            # the skip report, is what the user sees, so its warnings stay off the console.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fp = io.BytesIO(source) if isinstance(source, bytes) else source
            with Image.open(fp) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise BadImageError(f"{name}: decompression bomb ({w}x{h} pixels)")
                img.load()  # decode now: truncated files fail here, not later
                oriented = ImageOps.exif_transpose(img)
                return _to_mode(oriented, mode)
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadImageError(f"{name}: decompression bomb ({err})") from None
    except UnidentifiedImageError:
        raise BadImageError(f"{name}: not an image (unrecognised format)") from None
    except Exception as err:
        # Pillow's plugins raise more than OSError on malformed files: fuzzing found a TIFF
        # whose StripOffsets is a RATIONAL raise TypeError inside map_buffer, and others raise
        # IndexError or struct.error. Whatever a decoder raises, the file is unusable.
        reason = str(err) if isinstance(err, OSError) else f"{type(err).__name__}: {err}"
        reason = " ".join(reason.split())  # one line, whatever the message held
        raise BadImageError(f"{name}: unreadable or truncated image ({reason})") from None


def decode_uint8(source: str | Path | bytes, prep: Preprocessing) -> np.ndarray:
    """Decode to a uint8 (C, H, W) array at the model's size: what the training cache stores."""
    c, h, w = prep.input_size
    img = open_image(source, prep.color_mode)
    if img.size != (w, h):
        img = img.resize((w, h), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if c == 1 else arr.transpose(2, 0, 1).copy()


def normalize(batch_uint8: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """uint8 (N, C, H, W) or (C, H, W) -> float32 normalised by the run's mean and std."""
    x = batch_uint8.astype(np.float32) / 255.0
    shape = (-1, 1, 1)
    return (x - np.asarray(prep.mean, np.float32).reshape(shape)) / np.asarray(
        prep.std, np.float32
    ).reshape(shape)


def to_model_input(source: str | Path | bytes, prep: Preprocessing) -> np.ndarray:
    """An image file -> float32 (C, H, W) model input, exactly as training saw it."""
    return normalize(decode_uint8(source, prep), prep)
