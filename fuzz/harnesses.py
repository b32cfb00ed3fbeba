"""Fuzz targets: every place a file from outside enters pocketvision.

Each target takes the fuzzer's bytes, writes them where the real code reads a file, and calls
the real loader. The only acceptable outcomes are success or a PocketvisionError whose
message is one line naming the file; anything else (another exception type, a multi-line
message, a message without the file) raises, and the fuzzer records it as a crash.

The same functions replay the seed corpus in ``fuzz/corpus/NAME/`` under pytest
(tests/test_fuzz.py) and run coverage-guided under atheris (``fuzz/run.py``).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from pocketvision.data.builtin import load_idx_folder
from pocketvision.data.datasets import load_manifest
from pocketvision.data.decode import decode_files
from pocketvision.errors import PocketvisionError
from pocketvision.preprocess import Preprocessing, open_image
from pocketvision.rundir import (
    BEST,
    CONFIG,
    LABELS,
    MODEL,
    PREPROCESSING,
    load_run,
    load_weights,
    read_config,
)
from pocketvision.train.checkpoint import load_state, read_weights

# Every target writes under one private folder, made once per process.
WORK = Path(tempfile.mkdtemp(prefix="pocketvision-fuzz-"))
SMALL = Preprocessing(input_size=(1, 8, 8), mean=(0.5,), std=(0.25,))
RUN_FILES = (MODEL, PREPROCESSING, LABELS, CONFIG)


class FuzzFailure(AssertionError):
    """An outcome that is neither success nor a proper one-line PocketvisionError."""


def expect_named(err: PocketvisionError, path: Path | str) -> None:
    """The error is one line and names ``path`` (the file that was bad)."""
    message = str(err)
    if "\n" in message or "\r" in message:
        raise FuzzFailure(f"multi-line message: {message!r}")
    if str(path) not in message:
        raise FuzzFailure(f"message does not name {path}: {message!r}")


def _write(name: str, data: bytes) -> Path:
    path = WORK / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def image(data: bytes) -> None:
    """preprocess.open_image on a file and on the same bytes (how serve sees uploads)."""
    path = _write("image/upload.bin", data)
    for source, name in ((path, str(path)), (data, "<bytes>")):
        try:
            img = open_image(source, "RGB")
        except PocketvisionError as err:
            expect_named(err, name)
            continue
        if img.mode != "RGB" or min(img.size) < 1:
            raise FuzzFailure(f"open_image returned mode {img.mode} size {img.size}")


def folder(data: bytes) -> None:
    """The folder decoder: a bad file is skipped with its reason, never raised."""
    path = _write("folder/cls/file.bin", data)
    decoded = decode_files([str(path)], SMALL, workers=1)
    if decoded.kept == [0]:
        if tuple(decoded.images.shape) != (1, 1, 8, 8):
            raise FuzzFailure(f"decoded shape {tuple(decoded.images.shape)}")
    elif len(decoded.bad) != 1 or "\n" in decoded.bad[0][1]:
        raise FuzzFailure(f"bad-file record {decoded.bad!r}")


def _run_template() -> Path:
    """A real run folder of a 3-class lenet5: the files every run_files input starts from."""
    run = WORK / "template"
    if (run / BEST).exists():
        return run
    torch.manual_seed(0)
    from pocketvision import create_model
    from pocketvision.rundir import ModelSpec, save_weights, write_run_files

    spec = ModelSpec("lenet5", {"num_classes": 3, "in_chans": 1, "small_input": True})
    write_run_files(run, spec, ["cat", "dog", "fox"], Preprocessing((1, 28, 28), (0.5,), (0.5,)))
    (run / CONFIG).write_text(json.dumps({"model": "lenet5", "epochs": 1}))
    save_weights(create_model("lenet5", num_classes=3, in_chans=1, small_input=True), run / BEST)
    return run


def run_files(data: bytes) -> None:
    """load_run with one of model.json, preprocessing.json, labels.txt, config.json replaced.

    The first byte picks the file; the rest is its content.
    """
    if not data:
        return
    target = RUN_FILES[data[0] % len(RUN_FILES)]
    run = WORK / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(_run_template(), run)
    (run / target).write_bytes(data[1:])
    try:
        loaded = load_run(run)
    except PocketvisionError as err:
        # the fault may show in another file of the run (model.json vs the weights' shapes)
        expect_named(err, run)
        return
    if target == CONFIG:
        try:
            read_config(run)
        except PocketvisionError as err:
            expect_named(err, run / target)
    classes = loaded.model(torch.zeros(1, *loaded.preprocessing.input_size)).shape[-1]
    if classes != len(loaded.labels):
        raise FuzzFailure(f"loaded a run with {len(loaded.labels)} labels for {classes} logits")


def safetensors(data: bytes) -> None:
    """best.safetensors (header and tensors) into a small model, and as an --init file."""
    path = _write("weights/best.safetensors", data)
    model = nn.Sequential(nn.Linear(3, 2))
    for load in (lambda: load_weights(model, path), lambda: read_weights(str(path))):
        try:
            load()
        except PocketvisionError as err:
            expect_named(err, path)


def last_pt(data: bytes) -> None:
    """checkpoints/last.pt for --resume, and any .pt given to --init."""
    path = _write("ckpt/last.pt", data)
    for load in (lambda: load_state(path), lambda: read_weights(str(path))):
        try:
            load()
        except PocketvisionError as err:
            expect_named(err, path)


def _manifest_images() -> Path:
    where = WORK / "manifest"
    if not (where / "a.png").exists():
        where.mkdir(parents=True, exist_ok=True)
        for name, value in (("a.png", 40), ("b.png", 200)):
            Image.fromarray(np.full((6, 6), value, np.uint8)).save(where / name)
    return where


def csv_manifest(data: bytes) -> None:
    """A CSV manifest beside two real images a.png and b.png."""
    path = _manifest_images() / "manifest.csv"
    path.write_bytes(data)
    try:
        sets, classes, _ = load_manifest(path, SMALL, workers=1)
    except PocketvisionError as err:
        expect_named(err, path)
        return
    for split, images in sets.items():
        if len(images) and int(images.labels.max()) >= len(classes):
            raise FuzzFailure(f"{split} label {int(images.labels.max())} of {len(classes)}")


def idx(data: bytes) -> None:
    """train-images / train-labels IDX files: byte 0 bit 0 gzips them, bytes 1-2 split them."""
    if len(data) < 3:
        return
    cut = int.from_bytes(data[1:3], "big") % (len(data) - 2)
    images, labels = data[3 : 3 + cut], data[3 + cut :]
    folder = WORK / "idx"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    suffix = ".gz" if data[0] & 1 else ""
    pack: Callable[[bytes], bytes] = gzip.compress if suffix else bytes
    (folder / f"train-images-idx3-ubyte{suffix}").write_bytes(pack(images))
    (folder / f"train-labels-idx1-ubyte{suffix}").write_bytes(pack(labels))
    try:
        sets = load_idx_folder(folder, SMALL)
    except PocketvisionError as err:
        expect_named(err, folder)
        return
    train = sets["train"]
    if tuple(train.images.shape[1:]) != SMALL.input_size or len(train) != len(train.images):
        raise FuzzFailure(f"IDX set of shape {tuple(train.images.shape)}")


HARNESSES: dict[str, Callable[[bytes], None]] = {
    "image": image,
    "folder": folder,
    "run_files": run_files,
    "safetensors": safetensors,
    "last_pt": last_pt,
    "csv_manifest": csv_manifest,
    "idx": idx,
}


def cleanup() -> None:
    """Remove this process's work folder."""
    shutil.rmtree(WORK, ignore_errors=True)


def _seed_state() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {"0.weight": torch.randn(2, 3, generator=gen), "0.bias": torch.zeros(2)}


def seed_files() -> dict[str, dict[str, bytes]]:
    """The seed corpus: a few valid files per harness (fuzz/make_corpus.py writes them)."""
    import io

    def img(mode: str, fmt: str, size: tuple[int, int] = (5, 4), **kw: object) -> bytes:
        buf = io.BytesIO()
        picture = Image.linear_gradient("L").resize(size).convert(mode)
        picture.save(buf, fmt, **kw)
        return buf.getvalue()

    exif = Image.Exif()
    exif[0x0112] = 6
    images = {
        "rgb.png": img("RGB", "PNG"),
        "rgba.png": img("RGBA", "PNG"),
        "palette.gif": img("P", "GIF", transparency=0),
        "gray16.png": img("I;16", "PNG"),
        "exif6.jpg": img("RGB", "JPEG", exif=exif.tobytes()),
        "cmyk.jpg": img("CMYK", "JPEG"),
        "rgb.bmp": img("RGB", "BMP"),
        "gray.tif": img("L", "TIFF"),
        "rgb.webp": img("RGB", "WEBP"),
        "rgb.ppm": img("RGB", "PPM"),
        "rgb.ico": img("RGB", "ICO", sizes=[(4, 4)]),
    }
    template = _run_template()
    runs = {
        f"{name.replace('.', '_')}": bytes([i]) + (template / name).read_bytes()
        for i, name in enumerate(RUN_FILES)
    }
    st = WORK / "seed.safetensors"
    save_file(_seed_state(), str(st))
    pt = io.BytesIO()
    torch.save({"model": _seed_state(), "config": {"model": "x"}, "state": {"epoch": 1}}, pt)
    idx_images = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3]) + bytes(range(18))
    idx_labels = bytes([0, 0, 8, 1, 0, 0, 0, 2, 1, 0])
    cut = len(idx_images).to_bytes(2, "big")
    return {
        "image": images,
        "folder": {k: v for k, v in images.items() if k in ("rgb.png", "gray16.png", "exif6.jpg")},
        "run_files": runs,
        "safetensors": {"state.safetensors": st.read_bytes()},
        "last_pt": {"last.pt": pt.getvalue()},
        "csv_manifest": {
            "header_split.csv": b"path,label,split\na.png,cat,train\nb.png,dog,train\n"
            b"a.png,cat,val\nb.png,dog,test\n",
            "plain.csv": b"a.png,cat\nb.png,dog\n",
        },
        "idx": {
            "plain.idx": b"\0" + cut + idx_images + idx_labels,
            "gzip.idx": b"\1" + cut + idx_images + idx_labels,
        },
    }


if os.environ.get("POCKETVISION_FUZZ_KEEP") is None:
    import atexit

    atexit.register(cleanup)
