"""Looking at a data set before training on it: duplicates, leakage, balance, bad files.

Every file is read once. Its bytes give a SHA-256 (exact duplicates); the data package's own
decoder (:func:`pocketvision.data.decode.decode_one`, the one training uses, so the bad files
listed are exactly the ones training skips) gives a 32x32 grayscale image, and imagehash's DCT
perceptual hash of it (64 bits) finds near duplicates: re-encoded, resized, recoloured or
lightly edited copies. Groups are then read three ways: within one class (wasted images),
across classes (likely label noise) and across train / val / test (leakage, which silently
inflates accuracy).

>>> report = inspect_data("photos/")
>>> to_json(report)["leakage"]
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pocketvision.data import default_image_size, list_files, load_array_sets
from pocketvision.data.datasets import DataSplits, ImageSet
from pocketvision.data.decode import decode_one
from pocketvision.errors import PocketvisionError
from pocketvision.preprocess import Preprocessing

# Two images are near duplicates when their 64-bit perceptual hashes differ in at most this
# many bits (imagehash's phash; about 10% of the bits).
DEFAULT_MAX_DISTANCE = 6
SPLITS = ("train", "val", "test")
# phash works on a 32x32 grayscale image (hash_size 8 x highfreq_factor 4)
_HASH_INPUT = Preprocessing((1, 32, 32), (0.5,), (0.5,))
_THUMB = Preprocessing((3, 64, 64), (0.5,) * 3, (0.5,) * 3)


@dataclass(frozen=True)
class Item:
    """One usable image of the data set."""

    key: str  # the file's path, or "split[row]" for array sources
    label: int
    split: str
    sha256: str
    phash: int
    size: tuple[int, int] | None  # (width, height) as stored
    mode: str | None  # PIL mode as stored (RGB, L, P, CMYK, I;16, ...)


@dataclass(frozen=True)
class Group:
    """Images that are the same ("exact": same bytes) or look the same ("near")."""

    match: str
    members: tuple[int, ...]  # indexes into Inspection.items
    distance: int  # largest Hamming distance of a member's phash to the first's


@dataclass
class Inspection:
    """What :func:`inspect_data` found."""

    source: str
    classes: list[str]
    items: list[Item]
    bad_files: list[tuple[str, str, int, str]]  # (path, reason, label, split)
    duplicates: list[Group]
    near_duplicates: list[Group]
    max_distance: int
    arrays: dict[str, ImageSet] = field(default_factory=dict)  # array sources' pixels

    def splits_of(self, group: Group) -> list[str]:
        found = {self.items[i].split for i in group.members}
        return [s for s in SPLITS if s in found]

    def classes_of(self, group: Group) -> list[str]:
        return sorted({self.classes[self.items[i].label] for i in group.members})

    @property
    def leakage(self) -> list[Group]:
        """Groups, exact or near, with members in more than one split."""
        return [g for g in self.duplicates + self.near_duplicates if len(self.splits_of(g)) > 1]


def _phash(gray: np.ndarray) -> int:
    import imagehash

    bits = imagehash.phash(Image.fromarray(gray)).hash.flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _stored_format(data: bytes) -> tuple[tuple[int, int] | None, str | None]:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return (int(img.size[0]), int(img.size[1])), str(img.mode)
    except Exception:  # the decoder gives the reason; the header is only for the size table
        return None, None


def _read_file(path: str) -> tuple[str, np.ndarray | str, tuple[int, int] | None, str | None]:
    """(sha256, 32x32 gray uint8 or the reason training skips it, stored size, stored mode)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        data = b""
    size, mode = _stored_format(data)
    return hashlib.sha256(data).hexdigest(), decode_one(path, _HASH_INPUT), size, mode


def _file_items(
    files: dict[str, list[tuple[str, int]]], workers: int
) -> tuple[list[Item], list[tuple[str, str, int, str]]]:
    listed = [(path, label, split) for split in SPLITS for path, label in files.get(split, [])]
    items: list[Item] = []
    bad: list[tuple[str, str, int, str]] = []

    def read(entry: tuple[str, int, str]) -> tuple[str, np.ndarray | str, Any, Any, int | None]:
        sha, pixels, size, mode = _read_file(entry[0])
        # hashing in the worker too: imagehash's DCT is small numpy work between decodes
        ph = None if isinstance(pixels, str) else _phash(pixels[0])
        return sha, pixels, size, mode, ph

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inspect") as pool:
        for (path, label, split), (sha, pixels, size, mode, ph) in zip(
            listed, pool.map(read, listed, chunksize=64), strict=True
        ):
            if isinstance(pixels, str) or ph is None:
                bad.append((path, str(pixels), label, split))
            else:
                items.append(Item(path, label, split, sha, ph, size, mode))
    return items, bad


def _array_items(sets: dict[str, ImageSet]) -> list[Item]:
    items = []
    for split in SPLITS:
        if split not in sets:
            continue
        images, labels = sets[split].images.numpy(), sets[split].labels.tolist()
        size = (int(images.shape[3]), int(images.shape[2]))
        for row, label in enumerate(labels):
            pixels = images[row]  # (1, H, W): array sources are grayscale
            sha = hashlib.sha256(pixels.tobytes()).hexdigest()
            items.append(Item(f"{split}[{row}]", label, split, sha, _phash(pixels[0]), size, "L"))
    return items


def exact_groups(digests: Iterable[str]) -> list[Group]:
    """Groups of two or more equal digests, in order of first appearance."""
    by_digest: dict[str, list[int]] = {}
    for i, digest in enumerate(digests):
        by_digest.setdefault(digest, []).append(i)
    return [Group("exact", tuple(m), 0) for m in by_digest.values() if len(m) > 1]


def _close_pairs(hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) with i < j and Hamming(hashes[i], hashes[j]) <= max_distance; blocks of rows
    against the rest, so memory stays at ~block x N bytes."""
    rows, cols = [], []
    block = 256
    for start in range(0, len(hashes), block):
        diff = np.bitwise_count(hashes[start : start + block, None] ^ hashes[None, start:])
        r, c = np.nonzero(diff <= max_distance)
        keep = c > r  # columns start at ``start``: c > r is the strict upper triangle
        rows.append(r[keep] + start)
        cols.append(c[keep] + start)
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(cols)


def near_groups(items: list[Item], max_distance: int) -> list[Group]:
    """Connected groups of images whose phashes are within ``max_distance`` bits, leaving out
    groups whose members are all byte-identical (those are exact duplicates)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not items:
        return []
    values = np.array([it.phash for it in items], dtype=np.uint64)
    unique, inverse = np.unique(values, return_inverse=True)
    i, j = _close_pairs(unique, max_distance)
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(len(unique),) * 2)
    _, component = connected_components(graph, directed=False)
    members: dict[int, list[int]] = {}
    for index, comp in enumerate(component[inverse.ravel()].tolist()):
        members.setdefault(comp, []).append(index)
    groups = []
    for group in members.values():
        if len(group) < 2 or len({items[k].sha256 for k in group}) < 2:
            continue
        distance = int(np.bitwise_count(values[group] ^ values[group[0]]).max())
        groups.append(Group("near", tuple(group), distance))
    return sorted(groups, key=lambda g: g.members[0])


def inspect_data(
    data: str, *, max_distance: int = DEFAULT_MAX_DISTANCE, workers: int | None = None
) -> Inspection:
    """Inspect a data source: duplicates, near duplicates, leakage, balance, bad files.

    Args:
        data: A folder with a sub-folder per class (optionally inside train/ val/ test/), a
            CSV manifest, a folder of IDX files, "fashion-mnist" or "digits".
        max_distance: Largest phash Hamming distance (of 64 bits) that counts as "near".
        workers: Reading threads (default: CPU count).

    Raises:
        PocketvisionError: ``data`` is not a data set, or imagehash is not installed.
    """
    try:
        import imagehash  # noqa: F401
    except ImportError:
        raise PocketvisionError(
            "inspect needs imagehash: pip install 'pocketvision[inspect]'"
        ) from None
    if not 0 <= max_distance < 64:
        raise PocketvisionError(f"--max-distance must be in [0, 63], got {max_distance}")
    arrays: dict[str, ImageSet] = {}
    bad: list[tuple[str, str, int, str]] = []
    listed = list_files(data)
    if listed is None:
        chans, side = default_image_size(data)
        arrays = load_array_sets(data, Preprocessing((chans, side, side), (0.5,), (0.5,))) or {}
        classes = next(iter(arrays.values())).classes
        items = _array_items(arrays)
    else:
        files, classes = listed
        items, bad = _file_items(files, workers or os.cpu_count() or 1)
    duplicates = exact_groups(it.sha256 for it in items)
    near = near_groups(items, max_distance)
    return Inspection(data, classes, items, bad, duplicates, near, max_distance, arrays)


def _counts(report: Inspection) -> dict[str, dict[str, int]]:
    counts = {name: dict.fromkeys((*SPLITS, "total"), 0) for name in report.classes}
    for it in report.items:
        row = counts[report.classes[it.label]]
        row[it.split] += 1
        row["total"] += 1
    return counts


def imbalance_ratio(counts: Iterable[int]) -> float | None:
    """Largest class over smallest (None when a class is empty or there is no class)."""
    values = list(counts)
    if not values or min(values) == 0:
        return None
    return round(max(values) / min(values), 3)


def _class_table(report: Inspection) -> dict[str, Any]:
    counts = _counts(report)
    sizes = Counter(f"{it.size[0]}x{it.size[1]}" for it in report.items if it.size)
    widths = [it.size[0] for it in report.items if it.size]
    heights = [it.size[1] for it in report.items if it.size]
    return {
        "names": report.classes,
        "counts": counts,
        # over the training split: what the loss and the sampler see
        "imbalance_ratio": imbalance_ratio(c["train"] for c in counts.values()),
        "modes": dict(Counter(it.mode for it in report.items if it.mode).most_common()),
        "sizes": {
            "most_common": dict(sizes.most_common(10)),
            "distinct": len(sizes),
            "min": [min(widths), min(heights)] if widths else None,
            "max": [max(widths), max(heights)] if widths else None,
        },
    }


def _group_json(report: Inspection, group: Group) -> dict[str, Any]:
    files = [
        {"path": it.key, "class": report.classes[it.label], "split": it.split}
        for it in (report.items[i] for i in group.members)
    ]
    out: dict[str, Any] = {"files": files}
    if group.match == "exact":
        out["sha256"] = report.items[group.members[0]].sha256
    else:
        out["max_distance"] = group.distance
    classes = report.classes_of(group)
    out.update(
        classes=classes,
        splits=report.splits_of(group),
        across_classes=len(classes) > 1,  # likely label noise
    )
    return out


def to_json(report: Inspection) -> dict[str, Any]:
    """The report as JSON: exactly the keys duplicates, near_duplicates, leakage, classes and
    bad_files (README, "Inspect a data set")."""
    return {
        "duplicates": [_group_json(report, g) for g in report.duplicates],
        "near_duplicates": [_group_json(report, g) for g in report.near_duplicates],
        "leakage": [{"match": g.match, **_group_json(report, g)} for g in report.leakage],
        "classes": _class_table(report),
        "bad_files": [
            {"path": p, "reason": r, "class": report.classes[c], "split": s}
            for p, r, c, s in report.bad_files
        ],
    }


def _thumbnail(report: Inspection) -> Callable[[Item], np.ndarray]:
    def thumb(item: Item) -> np.ndarray:
        if report.arrays:
            split, row = item.key.rstrip("]").split("[")
            pixels = report.arrays[split].images[int(row)].numpy()
            img = (
                Image.fromarray(pixels[0]).convert("RGB").resize((64, 64), Image.Resampling.NEAREST)
            )
            return np.asarray(img)
        decoded = decode_one(item.key, _THUMB)
        if isinstance(decoded, str):  # changed on disk since it was read
            return np.full((64, 64, 3), 128, np.uint8)
        return decoded.transpose(1, 2, 0)

    return thumb


def sheet_groups(report: Inspection) -> list[Group]:
    """Groups in the order the contact sheet shows them: leakage, then across classes, then
    the rest."""
    groups = report.duplicates + report.near_duplicates

    def rank(g: Group) -> int:
        return 0 if len(report.splits_of(g)) > 1 else 1 if len(report.classes_of(g)) > 1 else 2

    return sorted(groups, key=rank)


def write_contact_sheet(
    report: Inspection, path: Path, *, max_groups: int = 24, per_group: int = 8
) -> int:
    """A PNG with one row per group (thumbnails captioned class/split); returns rows drawn."""
    from PIL import ImageDraw

    from pocketvision.files import write_atomic

    groups = sheet_groups(report)[:max_groups]
    cell, caption, header = 64, 14, 150
    width = header + per_group * (cell + 4)
    sheet = Image.new("RGB", (width, max(1, len(groups)) * (cell + caption + 6) + 6), "white")
    draw = ImageDraw.Draw(sheet)
    if not groups:
        draw.text((6, 30), "no duplicate or near-duplicate groups", fill="black")
    thumb = _thumbnail(report)
    for row, group in enumerate(groups):
        y = 6 + row * (cell + caption + 6)
        splits, classes = report.splits_of(group), report.classes_of(group)
        what = "exact" if group.match == "exact" else f"near (<= {group.distance} bits)"
        kind = "LEAK " if len(splits) > 1 else "LABELS " if len(classes) > 1 else ""
        draw.text((6, y + 4), f"{kind}{what}", fill="red" if kind else "black")
        draw.text((6, y + 20), f"{len(group.members)} images", fill="black")
        draw.text((6, y + 36), "/".join(splits), fill="black")
        for col, index in enumerate(group.members[:per_group]):
            item = report.items[index]
            x = header + col * (cell + 4)
            sheet.paste(Image.fromarray(thumb(item)), (x, y))
            label = f"{report.classes[item.label]}/{item.split}"[:11]
            draw.text((x, y + cell + 1), label, fill="black")
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    write_atomic(path, buffer.getvalue())
    return len(groups)


def summarize_splits(splits: DataSplits) -> dict[str, Any]:
    """What training records about its data (summary.json, the model card): exact duplicates
    of the decoded images within and across splits, class counts, imbalance, bad files.

    Cheap enough to run on every training run (one SHA-256 per decoded image); near duplicates
    need ``pocketvision inspect``.
    """
    sets = {"train": splits.train, "val": splits.val}
    if splits.test is not None:
        sets["test"] = splits.test
    owners = [(name, i) for name, s in sets.items() for i in range(len(s))]
    digests = [
        hashlib.sha256(s.images[i].numpy().tobytes()).hexdigest()
        for s in sets.values()
        for i in range(len(s))
    ]
    labels = [int(v) for s in sets.values() for v in s.labels.tolist()]
    groups = exact_groups(digests)
    cross_split = [g for g in groups if len({owners[i][0] for i in g.members}) > 1]
    cross_class = [g for g in groups if len({labels[i] for i in g.members}) > 1]
    train_counts = _class_counts(splits.train.labels.tolist(), len(splits.classes))
    return {
        "duplicate_groups": len(groups),
        "cross_split_duplicate_groups": len(cross_split),
        "cross_split_duplicate_images": sum(len(g.members) for g in cross_split),
        "cross_class_duplicate_groups": len(cross_class),
        "class_counts": dict(zip(splits.classes, train_counts, strict=True)),
        "imbalance_ratio": imbalance_ratio(train_counts),
        "bad_files": len(splits.bad_files),
    }


def _class_counts(labels: list[int], n: int) -> list[int]:
    counts = [0] * n
    for label in labels:
        counts[label] += 1
    return counts


def leak_warning(found: dict[str, Any], data: str) -> str | None:
    """The one line training prints when :func:`summarize_splits` found cross-split copies."""
    groups = found["cross_split_duplicate_groups"]
    if not groups:
        return None
    return (
        f"warning: {found['cross_split_duplicate_images']} images in {groups} group(s) are exact "
        f"copies across train/val/test, which inflates val/test accuracy; see "
        f"`pocketvision inspect {data}`"
    )
