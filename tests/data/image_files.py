"""Real image files for the data tests: every mode a phone or scanner produces, broken files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 16


def _pattern(seed: int, h: int = 24, w: int = 32) -> np.ndarray:
    """An RGB image with structure (so orientation and channel mistakes change pixels)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, :, 0] = 200  # top half red
    img[:, : w // 3, 2] = 180  # left third blue
    img += rng.integers(0, 40, (h, w, 3), dtype=np.uint8)
    return img


def _exif_rotated_jpeg(seed: int) -> bytes:
    """A JPEG stored sideways with EXIF orientation 6 (how phones save portrait photos)."""
    img = Image.fromarray(_pattern(seed))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def write_good_images(folder: Path, seed: int) -> list[Path]:
    """One file of each kind: RGB JPEG, EXIF-rotated JPEG, RGBA PNG, palette PNG, CMYK JPEG,
    16-bit grayscale PNG, 8-bit grayscale PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(_pattern(seed))
    files = {
        "rgb.jpg": lambda p: rgb.save(p, quality=95),
        "portrait.jpg": lambda p: p.write_bytes(_exif_rotated_jpeg(seed)),
        "rgba.png": lambda p: rgb.convert("RGBA").save(p),
        "palette.png": lambda p: rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(p),
        "cmyk.jpg": lambda p: rgb.convert("CMYK").save(p, quality=95),
        "gray16.png": lambda p: Image.fromarray(
            np.asarray(rgb.convert("L")).astype(np.uint16) * 257
        ).save(p),
        "gray.png": lambda p: rgb.convert("L").save(p),
    }
    paths = []
    for name, write in files.items():
        path = folder / name
        write(path)
        paths.append(path)
    return paths


def write_bad_files(folder: Path) -> dict[str, str]:
    """Broken files, mapped to a word their bad_files.txt reason must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(_pattern(99, 64, 64)).save(buf, "JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is a text file, not a JPEG\n")
    # 10,000 x 10,000 one-bit PNG: ~12 KB on disk, 100 megapixels decoded
    Image.new("1", (10_000, 10_000)).save(folder / "bomb.png")
    return {
        "truncated.jpg": "truncated",
        "empty.png": "empty",
        "notes.jpg": "not an image",
        "bomb.png": "decompression bomb",
    }
