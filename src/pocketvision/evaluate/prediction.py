"""``pocketvision predict``: labels and probabilities for image files, bad files skipped.

Each file goes through :func:`pocketvision.preprocess.to_model_input`, the decoding and
normalisation training used. A file that cannot be read gets an ``error`` entry and the others
are still predicted: one bad photo in a folder should not cost the rest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pocketvision.environment import resolve_device
from pocketvision.preprocess import BadImageError, to_model_input
from pocketvision.rundir import LoadedRun, load_run

# What a directory walk picks up (a file named directly is always tried, whatever its name).
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)


def _hidden(path: Path, root: Path) -> bool:
    # dotfiles and dot folders: .DS_Store, macOS "._photo.jpg" resource forks, .git
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def iter_image_paths(inputs: Sequence[str | Path]) -> Iterator[tuple[str, str | None]]:
    """Expand files and folders into (path, error) pairs, in order; error None means try it.

    Folders are walked recursively in sorted order for files with an image extension.
    """
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not _hidden(p, path)
            )
            if not found:
                exts = " ".join(sorted(IMAGE_EXTENSIONS))
                yield str(path), f"folder has no image files ({exts})"
            for p in found:
                yield str(p), None
        elif path.exists():
            yield str(path), None
        else:
            yield str(path), "no such file or directory"


def _reason(err: BadImageError, path: str) -> str:
    # BadImageError reads "PATH: reason"; the entry carries the path already
    msg = str(err)
    return msg[len(path) + 2 :] if msg.startswith(f"{path}: ") else msg


def predict_run(
    run: LoadedRun,
    inputs: Sequence[str | Path],
    topk: int = 3,
    *,
    batch_size: int = 64,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """Predict with an already loaded run; see :func:`predict`."""
    if topk < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    k = min(topk, len(run.labels))
    dev = resolve_device(device)
    model = run.model.to(dev).eval()
    results: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        x = torch.from_numpy(np.stack([arr for _, arr in pending])).to(dev)
        with torch.inference_mode():
            probs = torch.softmax(model(x).double(), dim=1).cpu()
        top_p, top_i = probs.topk(k, dim=1)
        for (entry, _), ps, idx in zip(pending, top_p.tolist(), top_i.tolist(), strict=True):
            entry["predictions"] = [
                {"label": run.labels[i], "probability": p} for p, i in zip(ps, idx, strict=True)
            ]
        pending.clear()

    for path, error in iter_image_paths(inputs):
        entry: dict[str, Any] = {"path": path}
        results.append(entry)
        if error is None:
            try:
                pending.append((entry, to_model_input(path, run.preprocessing)))
            except BadImageError as err:
                error = _reason(err, path)
        if error is not None:
            entry["error"] = error
        if len(pending) >= batch_size:
            flush()
    flush()
    return results


def predict(
    run_dir: str | Path,
    inputs: Sequence[str | Path],
    topk: int = 3,
    *,
    batch_size: int = 64,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """Top-k labels and probabilities for image files and folders of them.

    Args:
        run_dir: A run directory written by ``pocketvision train``.
        inputs: Image files and folders (walked recursively for image files).
        topk: Predictions per image (at most the number of classes).
        batch_size: Images per forward pass.
        device: "auto", "cpu", "cuda" or "mps".

    Returns:
        One dict per file, in input order (folders sorted): ``{"path", "predictions":
        [{"label", "probability"}, ...]}`` best first, or ``{"path", "error"}`` for a file
        that could not be read (missing, empty, truncated, not an image, too large).

    Raises:
        PocketvisionError: The run cannot be loaded (see :func:`pocketvision.rundir.load_run`).
    """
    return predict_run(load_run(run_dir), inputs, topk, batch_size=batch_size, device=device)
