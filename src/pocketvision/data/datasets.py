"""Image sets in memory: what every data source becomes, and the train/val/test split.

A source (folder per class, CSV manifest, IDX files, a built-in name) is decoded once into a
uint8 (N, C, H, W) tensor at the model's input size, so an epoch is index arithmetic on a
tensor, never a file read or a PIL call.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pocketvision.data.decode import decode_files
from pocketvision.errors import PocketvisionError
from pocketvision.preprocess import Preprocessing

# Split folder names accepted inside a dataset folder (``data/train/cat/...``).
TRAIN_NAMES = ("train", "training")
VAL_NAMES = ("val", "valid", "validation")
TEST_NAMES = ("test", "testing")


@dataclass
class ImageSet:
    """Decoded images of one split.

    Attributes:
        images: uint8 (N, C, H, W), already at the model's input size.
        labels: int64 (N,), indexes into ``classes``.
        classes: Class names in logit order.
        paths: The source file of each image; None for IDX files and built-in sets.
        backing: The memory-mapped file ``images`` lives in, or None when it is in RAM.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    paths: list[str] | None = None
    backing: Path | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> ImageSet:
        """The images at ``index`` (int64), in that order.

        A memory-mapped set stays memory-mapped: its rows are copied chunk by chunk into a new
        file beside the first, so splitting a folder larger than RAM never loads it all.
        """
        paths = None if self.paths is None else [self.paths[i] for i in index.tolist()]
        labels = self.labels[index]
        if self.backing is None:
            return ImageSet(self.images[index], labels, self.classes, paths)
        digest = hashlib.sha256(index.numpy().tobytes()).hexdigest()[:16]
        target = self.backing.with_name(f"{self.backing.stem}-{digest}.u8")
        shape = (len(index), *self.images.shape[1:])
        out = np.memmap(target, np.uint8, "w+", shape=shape)
        for start in range(0, len(index), 4096):
            chunk = index[start : start + 4096]
            out[start : start + len(chunk)] = self.images[chunk].numpy()
        out.flush()
        return ImageSet(torch.from_numpy(out), labels, self.classes, paths, target)


@dataclass
class DataSplits:
    """Everything training needs from a data source.

    Attributes:
        train: Images the model learns from.
        val: Model selection (best checkpoint, early stopping); a deterministic stratified
            split of the training images when the source has no validation set.
        test: Held-out images (Fashion-MNIST's t10k, a ``test/`` folder, ``split=test`` rows);
            never used for model selection. None when the source has none.
        classes: Class names in logit order.
        bad_files: (path, reason) for every file that was skipped.
    """

    train: ImageSet
    val: ImageSet
    test: ImageSet | None
    classes: list[str]
    bad_files: list[tuple[str, str]] = field(default_factory=list)


def stratified_split(
    labels: torch.Tensor, fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indexes into (keep, held_out), holding out ``fraction`` of every class.

    Deterministic in (labels, fraction, seed). Every class with at least 2 images keeps at
    least one and holds out at least one, so small classes still appear in validation.
    """
    gen = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_held = round(len(idx) * fraction)
        if len(idx) >= 2 and fraction > 0:
            n_held = min(max(n_held, 1), len(idx) - 1)
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    return torch.cat(keep).sort().values, torch.cat(held).sort().values


def stratified_subset(images: ImageSet, n: int, seed: int = 0) -> ImageSet:
    """At most ``n`` images with the class balance of ``images`` (for quick runs and tests)."""
    if n >= len(images):
        return images
    _, picked = stratified_split(images.labels, n / len(images), seed)
    return images.subset(picked)


def _is_hidden(name: str) -> bool:
    return name.startswith((".", "__"))


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name))


def _files_under(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(_is_hidden(q) for q in p.relative_to(folder).parts)
    )


def _decode_labeled(
    files: list[tuple[str, int]],
    classes: list[str],
    prep: Preprocessing,
    where: str,
    cache_dir: Path | None,
    workers: int | None,
) -> tuple[ImageSet, list[tuple[str, str]]]:
    """Decode (path, label) pairs; error out for a class left without any usable image."""
    decoded = decode_files([p for p, _ in files], prep, workers=workers, cache_dir=cache_dir)
    labels = torch.tensor([files[i][1] for i in decoded.kept], dtype=torch.int64)
    present = set(labels.tolist())
    for c, name in enumerate(classes):
        if c not in present:
            n_bad = sum(1 for _, lab in files if lab == c)
            raise PocketvisionError(
                f"{where}: class {name!r} has no usable image ({n_bad} file(s), all unreadable);"
                " add images or remove the class folder"
            )
    paths = [files[i][0] for i in decoded.kept]
    return ImageSet(decoded.images, labels, classes, paths, decoded.memmap), decoded.bad


def _check_classes(classes: list[str], where: str) -> None:
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise PocketvisionError(
            f"{where}: need at least 2 classes (a sub-folder per class), found {found}"
        )


def class_folder_files(
    root: Path, classes: list[str] | None = None
) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, label) of every file under a folder per class, and the class order used.

    Args:
        root: The folder (``root/cat/*.jpg``).
        classes: Class order to use (a validation folder follows its training folder's).
    """
    found = [d.name for d in _class_dirs(root)]
    if classes is None:
        classes = found
        _check_classes(classes, str(root))
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise PocketvisionError(
            f"{root}: class folder(s) {', '.join(unknown)} are not among the training classes"
        )
    files = []
    for c, name in enumerate(classes):
        folder = root / name
        if folder.is_dir():
            files += [(str(p), c) for p in _files_under(folder)]
    return files, classes


def load_class_folder(
    root: Path,
    prep: Preprocessing,
    classes: list[str] | None = None,
    cache_dir: Path | None = None,
    workers: int | None = None,
) -> tuple[ImageSet, list[tuple[str, str]]]:
    """A folder with one sub-folder of images per class (``root/cat/*.jpg``).

    Args:
        root: The folder.
        prep: Target size and channels.
        classes: Class order to use (a validation folder follows its training folder's).
        cache_dir: Where a memory-mapped cache goes when the images exceed memory.
        workers: Decoding threads.
    """
    files, classes = class_folder_files(root, classes)
    return _decode_labeled(files, classes, prep, str(root), cache_dir, workers)


def read_manifest(csv_path: Path) -> tuple[dict[str, list[tuple[str, int]]], list[str]]:
    """A CSV manifest's rows: ({split: [(path, label)]}, classes), without decoding a file.

    Rows are ``path,label`` (header optional) with an optional ``split`` column (train, val or
    test; rows without one are training rows). Relative paths are relative to the CSV file.
    """
    try:
        with csv_path.open(newline="") as f:
            rows = [r for r in csv.reader(f) if r and any(cell.strip() for cell in r)]
    except (OSError, UnicodeDecodeError) as err:
        raise PocketvisionError(f"{csv_path}: cannot read the manifest ({err})") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        header = [c.strip().lower() for c in rows[0]]
        rows = rows[1:]
    else:
        header = ["path", "label", "split"][: len(rows[0]) if rows else 2]
    if not rows:
        raise PocketvisionError(f"{csv_path}: empty manifest; expected rows of path,label")
    split_col = header.index("split") if "split" in header else None
    entries: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for line, row in enumerate(rows, start=2 if header[0] == "path" else 1):
        if len(row) < 2:
            raise PocketvisionError(f"{csv_path}:{line}: expected path,label, got {row!r}")
        # a row shorter than the header has no split: a training row, like an empty cell
        cell = row[split_col] if split_col is not None and split_col < len(row) else "train"
        split = cell.strip().lower() or "train"
        split = "val" if split in VAL_NAMES else "test" if split in TEST_NAMES else split
        if split not in entries:
            raise PocketvisionError(f"{csv_path}:{line}: unknown split {split!r}")
        path = Path(row[0].strip())
        entries[split].append(
            (str(path if path.is_absolute() else csv_path.parent / path), row[1].strip())
        )
    classes = sorted({label for rows_ in entries.values() for _, label in rows_})
    _check_classes(classes, str(csv_path))
    index = {name: i for i, name in enumerate(classes)}
    if not entries["train"]:
        raise PocketvisionError(f"{csv_path}: no training rows (split column train or empty)")
    labeled = {s: [(p, index[lab]) for p, lab in pairs] for s, pairs in entries.items() if pairs}
    return labeled, classes


def load_manifest(
    csv_path: Path, prep: Preprocessing, cache_dir: Path | None = None, workers: int | None = None
) -> tuple[dict[str, ImageSet], list[str], list[tuple[str, str]]]:
    """A CSV manifest (:func:`read_manifest`), decoded.

    Returns:
        ({split: ImageSet}, classes, bad_files).
    """
    entries, classes = read_manifest(csv_path)
    sets: dict[str, ImageSet] = {}
    bad: list[tuple[str, str]] = []
    for split, labeled in entries.items():
        if split == "train":
            imgs, b = _decode_labeled(labeled, classes, prep, str(csv_path), cache_dir, workers)
        else:
            decoded = decode_files([p for p, _ in labeled], prep, workers=workers)
            lab = torch.tensor([labeled[i][1] for i in decoded.kept], dtype=torch.int64)
            imgs, b = (
                ImageSet(decoded.images, lab, classes, [labeled[i][0] for i in decoded.kept]),
                decoded.bad,
            )
        sets[split] = imgs
        bad += b
    return sets, classes, bad


def split_folders(root: Path) -> dict[str, Path]:
    """train/val/test sub-folders of ``root`` when it is organised that way, else {}."""
    found: dict[str, Path] = {}
    for d in _class_dirs(root):
        name = d.name.lower()
        for split, names in (("train", TRAIN_NAMES), ("val", VAL_NAMES), ("test", TEST_NAMES)):
            if name in names:
                found[split] = d
    return found if "train" in found else {}
