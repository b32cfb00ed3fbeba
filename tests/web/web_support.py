"""Helpers for the web tests: HTTP without extra packages, test images, the artifacts folder."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"


@dataclass(frozen=True)
class Server:
    url: str
    run: Path
    log: Path


def multipart(
    fields: dict[str, str], file: bytes, filename: str = "image.png"
) -> tuple[bytes, str]:
    """A multipart/form-data body with a `file` part and text fields; (body, content type)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + file
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post(
    url: str, file: bytes, fields: dict[str, str] | None = None, filename: str = "image.png"
) -> tuple[int, Any]:
    """POST a multipart upload; (status, parsed JSON body)."""
    body, ctype = multipart(fields or {}, file, filename)
    request = urllib.request.Request(url, data=body, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def digit_images(count: int = 10) -> tuple[list[np.ndarray], np.ndarray]:
    """Digits from the fixed test split of pocketvision's "digits" data (never trained on).

    Returns 8-bit (32, 32) grayscale arrays, as the data loader makes them, and their labels.
    """
    from pocketvision.data import load_data
    from pocketvision.preprocess import Preprocessing

    prep = Preprocessing(input_size=(1, 32, 32), mean=(0.5,), std=(0.5,))
    test = load_data("digits", prep).test
    assert test is not None
    step = len(test.labels) // count
    picks = list(range(0, step * count, step))
    return [test.images[i, 0].numpy() for i in picks], test.labels[picks].numpy()


def edge_image(size: int = 64) -> np.ndarray:
    """Black top half, white bottom half: one horizontal edge across the middle."""
    image = np.zeros((size, size), np.uint8)
    image[size // 2 :] = 255
    return image
