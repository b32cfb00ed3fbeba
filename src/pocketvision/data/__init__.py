"""Data: every source becomes uint8 tensors once, then batched augmentation on tensors.

>>> from pocketvision.data import load_data
>>> splits = load_data("digits", prep)      # or "fashion-mnist", a folder, a .csv, an IDX folder
>>> splits.train.images.shape, splits.classes
"""

from __future__ import annotations

from pathlib import Path

from pocketvision.data.builtin import load_digits, load_fashion_mnist, load_idx_folder
from pocketvision.data.datasets import (
    DataSplits,
    ImageSet,
    class_folder_files,
    load_class_folder,
    load_manifest,
    read_manifest,
    split_folders,
    stratified_split,
    stratified_subset,
)
from pocketvision.errors import PocketvisionError
from pocketvision.preprocess import Preprocessing

BUILTIN = ("fashion-mnist", "digits")

__all__ = [
    "BUILTIN",
    "DataSplits",
    "ImageSet",
    "default_image_size",
    "list_files",
    "load_array_sets",
    "load_data",
    "stratified_split",
    "stratified_subset",
]


def _is_idx_folder(path: Path) -> bool:
    return any(path.glob("train-images*idx3-ubyte*"))


def _source_path(data: str) -> Path:
    """The file or folder ``data`` names; a one-line error when it is not a data source."""
    path = Path(data).expanduser()
    if not path.exists():
        raise PocketvisionError(
            f"{data}: no such file or folder; give a folder with a sub-folder per class, "
            "a CSV manifest (path,label), a folder of IDX files, 'fashion-mnist' or 'digits'"
        )
    if path.is_file() and path.suffix.lower() != ".csv":
        raise PocketvisionError(f"{path}: a file must be a CSV manifest (path,label)")
    return path


def _check_not_empty(path: Path) -> None:
    if not any(path.iterdir()):
        raise PocketvisionError(
            f"{path}: empty folder; put one sub-folder of images per class in it"
        )


def list_files(data: str) -> tuple[dict[str, list[tuple[str, int]]], list[str]] | None:
    """The image files of a data source by split, without decoding: ({split: [(path, label)]},
    classes); None for sources that are not image files (built-in sets, IDX folders).

    Splits are the source's own (train/val/test folders, a manifest's split column); the
    validation split that :func:`load_data` draws from the training images is not applied.
    """
    if data in BUILTIN:
        return None
    path = _source_path(data)
    if path.is_file():
        return read_manifest(path)
    if _is_idx_folder(path):
        return None
    if splits := split_folders(path):
        files, classes = class_folder_files(splits["train"])
        found = {"train": files}
        for name in ("val", "test"):
            if name in splits:
                found[name] = class_folder_files(splits[name], classes)[0]
        return found, classes
    _check_not_empty(path)
    files, classes = class_folder_files(path)
    return {"train": files}, classes


def load_array_sets(data: str, prep: Preprocessing) -> dict[str, ImageSet] | None:
    """The source's own splits for sources that are arrays, not image files (built-in sets and
    IDX folders); None for folders and manifests."""
    if data == "fashion-mnist":
        return load_fashion_mnist(prep)
    if data == "digits":
        return load_digits(prep)
    path = _source_path(data)
    return load_idx_folder(path, prep) if path.is_dir() and _is_idx_folder(path) else None


def default_image_size(data: str) -> tuple[int, int]:
    """(in_chans, size) a model gets for ``data`` when the user does not choose.

    Fashion-MNIST and IDX files keep their own 28x28 grayscale; digits' 8x8 images are
    upsampled to 32 (LeNet's size); photo folders and manifests become 64x64 RGB, small
    enough to train on a laptop CPU.
    """
    if data in BUILTIN:
        return (1, 28) if data == "fashion-mnist" else (1, 32)
    path = Path(data)
    if path.is_dir() and _is_idx_folder(path):
        return 1, 28
    return 3, 64


def load_data(
    data: str,
    prep: Preprocessing,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: Path | None = None,
    workers: int | None = None,
) -> DataSplits:
    """Load a data source as decoded uint8 tensors with train / val / (test) splits.

    Args:
        data: "fashion-mnist", "digits", a folder with a sub-folder per class (optionally
            inside train/ val/ test/ folders), a CSV manifest (path,label[,split]) or a
            folder of MNIST-format IDX files.
        prep: Input size and channels to decode to (mean and std are not used here).
        val_fraction: Share of every class held out for validation when the source has no
            validation split.
        seed: Seed of that split (the split is deterministic in it).
        cache_dir: Memory-mapped cache for folders larger than memory.
        workers: Image decoding threads (default: CPU count).

    Raises:
        PocketvisionError: The source does not exist, is empty, has a class without usable
            images or fewer than two classes.
    """
    bad: list[tuple[str, str]] = []
    array_sets = load_array_sets(data, prep)
    if array_sets is not None:
        sets = array_sets
    else:
        path = _source_path(data)
        if path.is_file():
            sets, _, bad = load_manifest(path, prep, cache_dir, workers)
        elif splits := split_folders(path):
            train, bad = load_class_folder(splits["train"], prep, None, cache_dir, workers)
            sets = {"train": train}
            for name in ("val", "test"):
                if name in splits:
                    sets[name], more = load_class_folder(
                        splits[name], prep, train.classes, cache_dir, workers
                    )
                    bad += more
        else:
            _check_not_empty(path)
            sets = {}
            sets["train"], bad = load_class_folder(path, prep, None, cache_dir, workers)
    train = sets["train"]
    if "val" in sets:
        val = sets["val"]
    else:
        keep, held = stratified_split(train.labels, val_fraction, seed)
        train, val = train.subset(keep), train.subset(held)
    return DataSplits(train, val, sets.get("test"), train.classes, bad)
