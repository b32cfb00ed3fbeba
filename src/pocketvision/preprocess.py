"""Decoding any image file the same way for training, prediction, export checks and serving.

One rule for every path an image takes into a model: apply EXIF orientation (phone photos),
convert grayscale / RGB / RGBA / palette / CMYK / 16-bit to the model's channels, resize to the
input size ("squash"), scale to [0, 1], normalise by mean and std.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pocketvision.rundir import Preprocessing

# Refuse images over ~90 megapixels outright (PIL warns above 89M and errors at 2x that).
MAX_PIXELS = 90_000_000


class BadImageError(ValueError):
    """A file that cannot be used as an image; the message is the reason, for bad_files.txt."""


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
    except (OSError, SyntaxError, ValueError) as err:
        raise BadImageError(f"{name}: unreadable or truncated image ({err})") from None


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
