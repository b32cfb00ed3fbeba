"""Built-in data sets and the IDX format: Fashion-MNIST (and MNIST-style folders), digits.

Fashion-MNIST: Xiao, Rasul, Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking
Machine Learning Algorithms", arXiv:1708.07747, 2017. 60,000 training and 10,000 test 28x28
grayscale images of 10 clothing classes.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pocketvision.data.datasets import ImageSet
from pocketvision.errors import PocketvisionError
from pocketvision.files import write_atomic
from pocketvision.preprocess import Preprocessing

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

# The dataset's own download location and MD5 sums (github.com/zalandoresearch/fashion-mnist).
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

# Fraction of scikit-learn's digits held out as a fixed test split (seed 0, stratified).
DIGITS_TEST_FRACTION = 0.2


def fashion_mnist_dirs() -> list[Path]:
    """Where Fashion-MNIST is looked for, in order."""
    dirs = []
    if os.environ.get("POCKETVISION_DATA"):
        base = Path(os.environ["POCKETVISION_DATA"])
        dirs += [base / "fashion-mnist", base]
    dirs += [Path.home() / ".cache" / "pocketvision" / "fashion-mnist", DEBIAN_DIR]
    return dirs


def _has_idx(folder: Path, prefix: str) -> bool:
    return _idx_file(folder, f"{prefix}-images-idx3-ubyte") is not None


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz", stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): the MNIST format, uint8 data only."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise PocketvisionError(f"{path}: cannot read IDX file ({err})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise PocketvisionError(f"{path}: not a uint8 IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise PocketvisionError(f"{path}: truncated IDX header ({ndim} dimensions announced)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(bytearray(raw), np.uint8, offset=4 + 4 * ndim)  # writable copy
    # math.prod on Python ints: np.prod of 2**32-sized dimensions wraps around in int64
    if data.size != math.prod(shape):
        raise PocketvisionError(f"{path}: truncated IDX file ({data.size} of {shape} values)")
    try:  # (2**32-1, 2**32-1, 0) holds 0 values yet is a shape numpy cannot make
        return data.reshape(shape)
    except ValueError:
        raise PocketvisionError(f"{path}: impossible IDX shape {shape}") from None


def to_input_size(images: np.ndarray | torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """uint8 (N, H, W) or (N, C, H, W) -> uint8 (N, C, H, W) at ``prep.input_size``."""
    x = torch.as_tensor(images)
    if x.ndim == 3:
        x = x[:, None]
    c, h, w = prep.input_size
    if x.shape[-2:] != (h, w):
        out = []
        for chunk in x.split(4096):  # bound the float copy's memory
            y = F.interpolate(chunk.float(), size=(h, w), mode="bilinear", antialias=True)
            out.append(y.round_().clamp_(0, 255).to(torch.uint8))
        x = torch.cat(out)
    if x.shape[1] != c:
        x = x.expand(-1, c, -1, -1) if x.shape[1] == 1 else x.float().mean(1, keepdim=True)
        x = x.round().to(torch.uint8).contiguous()
    return x.contiguous()


def load_idx_folder(
    folder: Path, prep: Preprocessing, classes: list[str] | None = None
) -> dict[str, ImageSet]:
    """MNIST-format files in a folder: ``train-*`` and optionally ``t10k-*`` (the test split)."""
    sets: dict[str, ImageSet] = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img_file = _idx_file(folder, f"{prefix}-images-idx3-ubyte")
        lab_file = _idx_file(folder, f"{prefix}-labels-idx1-ubyte")
        if img_file is None:
            continue
        if lab_file is None:
            raise PocketvisionError(f"{folder}: {img_file.name} has no {prefix}-labels file")
        images, labels = read_idx(img_file), read_idx(lab_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise PocketvisionError(
                f"{folder}: {img_file.name} {images.shape} and {lab_file.name} "
                f"{labels.shape} do not match"
            )
        if images.size == 0:
            raise PocketvisionError(f"{folder}: {img_file.name} holds no images {images.shape}")
        lab = torch.from_numpy(labels.astype(np.int64))
        names = classes or [str(i) for i in range(int(lab.max()) + 1)]
        if int(lab.max()) >= len(names):
            raise PocketvisionError(
                f"{folder}: {lab_file.name} has label {int(lab.max())}, past the "
                f"{len(names)} classes"
            )
        sets[split] = ImageSet(to_input_size(images, prep), lab, names)
    if "train" not in sets:
        raise PocketvisionError(f"{folder}: no train-images-idx3-ubyte[.gz] file")
    return sets


def _download(folder: Path, base_url: str) -> None:
    for name, md5 in FASHION_MNIST_MD5.items():
        target = folder / name
        if target.is_file() and hashlib.md5(target.read_bytes()).hexdigest() == md5:
            continue
        with urllib.request.urlopen(base_url + name, timeout=30) as response:
            data = response.read()
        got = hashlib.md5(data).hexdigest()
        if got != md5:
            raise PocketvisionError(f"{base_url + name}: checksum {got} != expected {md5}")
        write_atomic(target, data)


def find_fashion_mnist(download: bool = True) -> Path:
    """The folder holding Fashion-MNIST's IDX files, downloading it when it is nowhere.

    Raises:
        PocketvisionError: Not found and the download failed (no network), with what to do.
    """
    dirs = fashion_mnist_dirs()
    for d in dirs:
        if _has_idx(d, "train") and _has_idx(d, "t10k"):
            return d
    cache = Path.home() / ".cache" / "pocketvision" / "fashion-mnist"
    if download:
        try:
            _download(cache, FASHION_MNIST_URL)
            return cache
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            looked = ", ".join(str(d) for d in dirs)
            raise PocketvisionError(
                f"fashion-mnist: not found in {looked} and download failed ({reason}); "
                "install it with `sudo apt-get install dataset-fashion-mnist` or put the four "
                f"*-ubyte.gz files in {cache} (or $POCKETVISION_DATA/fashion-mnist)"
            ) from None
    raise PocketvisionError(
        "fashion-mnist: not found; `sudo apt-get install dataset-fashion-mnist`"
    )


def load_fashion_mnist(prep: Preprocessing) -> dict[str, ImageSet]:
    """Fashion-MNIST's train (60,000) and test (10,000) splits at ``prep.input_size``."""
    return load_idx_folder(find_fashion_mnist(), prep, FASHION_MNIST_CLASSES)


def load_digits(prep: Preprocessing) -> dict[str, ImageSet]:
    """scikit-learn's 1,797 8x8 digits (UCI), with a fixed stratified 20% test split."""
    from sklearn.datasets import load_digits as sk_digits

    from pocketvision.data.datasets import stratified_split

    bunch = sk_digits()
    # pixel values are 0..16 (counts of set pixels in 4x4 blocks of the 32x32 original)
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    full = ImageSet(
        to_input_size(images, prep),
        torch.from_numpy(bunch.target.astype(np.int64)),
        [str(i) for i in range(10)],
    )
    train, test = stratified_split(full.labels, DIGITS_TEST_FRACTION, seed=0)
    return {"train": full.subset(train), "test": full.subset(test)}
