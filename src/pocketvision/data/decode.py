"""Decoding many image files once, in parallel, into one uint8 tensor.

PIL releases the GIL while it decodes and resizes, so a thread pool scales with cores without
the pickling cost of processes. Folders whose decoded size exceeds the memory budget go into a
memory-mapped file instead (``~/.cache/pocketvision/decoded`` by default), keyed by the files'
paths, sizes and modification times and the target size, so a second run reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pocketvision.files import write_json
from pocketvision.preprocess import BadImageError, Preprocessing, decode_uint8

# Decoded folders larger than this many bytes are memory-mapped from disk instead of held in RAM.
# Half the machine's memory by default; POCKETVISION_MEMORY_LIMIT (bytes) overrides it.
DEFAULT_CACHE = Path.home() / ".cache" / "pocketvision" / "decoded"


def memory_limit() -> int:
    """Bytes of decoded images to keep in RAM before switching to a memory-mapped cache."""
    env = os.environ.get("POCKETVISION_MEMORY_LIMIT")
    if env:
        return int(env)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 4 << 30


@dataclass
class Decoded:
    """Result of :func:`decode_files`.

    Attributes:
        images: uint8 (K, C, H, W) for the K usable files, in input order.
        kept: Index into the input list of each row of ``images``.
        bad: (path, reason) for every file that was skipped.
        memmap: The cache file backing ``images``, or None when it lives in RAM.
    """

    images: torch.Tensor
    kept: list[int]
    bad: list[tuple[str, str]]
    memmap: Path | None = None


def decode_one(path: str, prep: Preprocessing) -> np.ndarray | str:
    """One file as training decodes it: uint8 (C, H, W), or the reason it is skipped."""
    try:
        return decode_uint8(path, prep)
    except BadImageError as err:
        return str(err).removeprefix(f"{path}: ")
    except MemoryError:
        return "too large to decode in memory"


def _decoded_stream(
    paths: list[str], prep: Preprocessing, workers: int
) -> Iterator[np.ndarray | str]:
    if workers <= 1 or len(paths) < 16:
        yield from (decode_one(p, prep) for p in paths)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        # map keeps input order, so results pair with their paths
        yield from pool.map(lambda p: decode_one(p, prep), paths)


def _cache_key(paths: list[str], prep: Preprocessing) -> str:
    h = hashlib.sha256(repr(prep.input_size).encode())
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()[:24]


def decode_files(
    paths: list[str],
    prep: Preprocessing,
    *,
    workers: int | None = None,
    cache_dir: Path | None = None,
    limit_bytes: int | None = None,
) -> Decoded:
    """Decode every file to uint8 at ``prep.input_size``; skip bad files with their reason.

    Args:
        paths: Image files.
        prep: Target (C, H, W).
        workers: Decoding threads (default: CPU count).
        cache_dir: Folder for the memory-mapped cache of large sets (default
            ~/.cache/pocketvision/decoded).
        limit_bytes: Decoded size above which the memory-mapped cache is used
            (default :func:`memory_limit`).
    """
    c, h, w = prep.input_size
    workers = workers or os.cpu_count() or 1
    per_image = c * h * w
    limit = memory_limit() if limit_bytes is None else limit_bytes
    if per_image * len(paths) <= limit:
        images = np.empty((len(paths), c, h, w), np.uint8)
        return _fill(images, paths, prep, workers, None)
    folder = cache_dir or DEFAULT_CACHE
    key = _cache_key(paths, prep)
    data_file, meta_file = folder / f"{key}.u8", folder / f"{key}.json"
    if data_file.exists() and meta_file.exists():
        meta = json.loads(meta_file.read_text())
        n = len(meta["kept"])
        mm = np.memmap(data_file, np.uint8, "r+", shape=(len(paths), c, h, w))
        return Decoded(
            torch.from_numpy(mm[:n]), meta["kept"], [tuple(b) for b in meta["bad"]], data_file
        )
    folder.mkdir(parents=True, exist_ok=True)
    mm = np.memmap(data_file, np.uint8, "w+", shape=(len(paths), c, h, w))
    decoded = _fill(mm, paths, prep, workers, data_file)
    mm.flush()
    # the metadata file marks the cache complete; a killed decode leaves none and is redone
    write_json(meta_file, {"kept": decoded.kept, "bad": decoded.bad, "paths": len(paths)})
    return decoded


def _fill(
    out: np.ndarray, paths: list[str], prep: Preprocessing, workers: int, memmap: Path | None
) -> Decoded:
    kept: list[int] = []
    bad: list[tuple[str, str]] = []
    for i, result in enumerate(_decoded_stream(paths, prep, workers)):
        if isinstance(result, str):
            bad.append((paths[i], result))
        else:
            # usable images are packed to the front, so rows [:len(kept)] are the data set
            out[len(kept)] = result
            kept.append(i)
    return Decoded(torch.from_numpy(out[: len(kept)]), kept, bad, memmap)
