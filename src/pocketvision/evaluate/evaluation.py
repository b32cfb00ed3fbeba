"""``pocketvision evaluate``: a trained run measured on a labelled split, with pictures.

The run's own data string (config.json ``data``) and preprocessing reload exactly the split
it was validated on; ``--data`` points it at other labelled images instead.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import NDArray

from pocketvision.environment import resolve_device
from pocketvision.errors import PocketvisionError
from pocketvision.evaluate.inference import predict_probs
from pocketvision.evaluate.metrics import classification_metrics
from pocketvision.evaluate.plots import plot_confusion_matrix, plot_mistakes
from pocketvision.files import write_json
from pocketvision.rundir import LoadedRun, load_run

if TYPE_CHECKING:
    from pocketvision.data.datasets import DataSplits, ImageSet

SPLITS = ("val", "test", "all")
METRICS_FILE = "metrics.json"
CONFUSION_FILE = "confusion_matrix.png"
MISTAKES_FILE = "mistakes.png"


def _class_index(data_classes: list[str], labels: list[str], data: str, run: Path) -> list[int]:
    """Map the data's class indices onto the model's logit order, by class name."""
    missing = [c for c in data_classes if c not in labels]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise PocketvisionError(
            f"{data}: classes {shown} are not among the {len(labels)} labels of {run} "
            "(labels.txt); evaluate with data of the classes the run was trained on"
        )
    position = {name: i for i, name in enumerate(labels)}
    return [position[c] for c in data_classes]


def evaluate_images(
    run: LoadedRun,
    images: torch.Tensor | NDArray[np.uint8],
    labels: torch.Tensor | NDArray[np.int64],
    *,
    classes: list[str] | None = None,
    out_dir: Path | None = None,
    source: str = "",
    batch_size: int = 256,
    device: str = "auto",
) -> dict[str, Any]:
    """Metrics of a loaded run on uint8 images; with ``out_dir``, also the files and PNGs.

    Args:
        run: A run from :func:`pocketvision.rundir.load_run`.
        images: uint8 (N, C, H, W) at the run's input size, not yet normalised.
        labels: Class indices (N,) into ``classes``.
        classes: Names of the label indices; defaults to the run's labels. Names are mapped
            onto the run's logit order, so a dataset listing classes in another order is fine.
        out_dir: Where confusion_matrix.png and mistakes.png go (None: nowhere).
        source: What the images are, for the plot title (e.g. "digits, test split").
        batch_size: Images per forward pass.
        device: "auto", "cpu", "cuda" or "mps".

    Returns:
        :func:`pocketvision.evaluate.metrics.classification_metrics` plus ``seconds``,
        ``images_per_s`` and ``mistakes`` (the tiles of mistakes.png).
    """
    arr = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    y = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    y = y.astype(np.int64)
    if arr.shape[0] == 0:
        raise PocketvisionError(f"{run.path}: nothing to evaluate (0 images)")
    if classes is not None and classes != run.labels:
        y = np.asarray(_class_index(classes, run.labels, "data", run.path), np.int64)[y]
    start = time.perf_counter()
    probs = predict_probs(
        run.model, arr, run.preprocessing, batch_size=batch_size, device=resolve_device(device)
    )
    seconds = time.perf_counter() - start
    result = classification_metrics(y, probs, run.labels)
    result["seconds"] = seconds
    result["images_per_s"] = arr.shape[0] / seconds if seconds > 0 else None
    if out_dir is not None:
        result["mistakes"] = plot_mistakes(arr, y, probs, run.labels, out_dir / MISTAKES_FILE)
        plot_confusion_matrix(
            np.asarray(result["confusion_matrix"], np.int64),
            run.labels,
            out_dir / CONFUSION_FILE,
            title=f"{run.path.name} on {source or 'data'}: accuracy {result['accuracy']:.2%} "
            f"({arr.shape[0]} images)",
        )
    return result


def evaluate(
    run_dir: str | Path,
    data: str | None = None,
    split: str = "val",
    *,
    batch_size: int = 256,
    device: str = "auto",
    write: bool = True,
) -> dict[str, Any]:
    """Evaluate a trained run on a labelled split and write its report into the run.

    Args:
        run_dir: A run directory written by ``pocketvision train``.
        data: Data to evaluate on (a folder per class, a CSV manifest, an IDX folder,
            "fashion-mnist" or "digits"); None uses the run's own (config.json ``data``).
        split: "val" (the run's validation split: same data, fraction and seed as training),
            "test" (the dataset's test split, e.g. Fashion-MNIST t10k) or "all" (every image).
        batch_size: Images per forward pass.
        device: "auto", "cpu", "cuda" or "mps".
        write: Write metrics.json, confusion_matrix.png and mistakes.png into ``run_dir``.

    Returns:
        The metrics (see :func:`evaluate_images`) with ``run``, ``model``, ``data``,
        ``split`` and ``num_bad_files`` added; the same dict metrics.json holds.

    Raises:
        PocketvisionError: The run cannot be loaded, it names no data and none is given, the
            split does not exist, or the data's classes are not the run's.
    """
    if split not in SPLITS:
        raise PocketvisionError(f"--split {split}: unknown; use one of {', '.join(SPLITS)}")
    run = load_run(run_dir)
    data, splits, parts = _load_split(run, data, split)
    images = torch.cat([p.images for p in parts])
    labels = torch.cat([p.labels for p in parts])
    if images.shape[0] == 0:
        raise PocketvisionError(f"{data}: the {split} split is empty")
    _class_index(splits.classes, run.labels, data, run.path)
    result = evaluate_images(
        run,
        images,
        labels,
        classes=splits.classes,
        out_dir=run.path if write else None,
        source=f"{data}, {split} split",
        batch_size=batch_size,
        device=device,
    )
    paths = [path for p in parts for path in (p.paths or [])]
    if len(paths) == images.shape[0]:
        # folders and manifests know each image's file: name it, so a mistake can be looked at
        for mistake in result.get("mistakes", []):
            mistake["path"] = paths[mistake["index"]]
    result = {
        "run": str(run.path),
        "model": run.spec.name,
        "data": data,
        "split": split,
        "num_bad_files": len(splits.bad_files),
        **result,
    }
    if write:
        write_json(run.path / METRICS_FILE, result)
    return result


def _load_split(
    run: LoadedRun, data: str | None, split: str
) -> tuple[str, DataSplits, list[ImageSet]]:
    """(the data string, its splits, the parts ``split`` names) for ``run``."""
    config = run.config or {}
    data = data or config.get("data")
    if not data:
        raise PocketvisionError(
            f"{run.path}/config.json names no data; pass --data (a folder, CSV, IDX folder, "
            "fashion-mnist or digits)"
        )
    from pocketvision.data import load_data

    # the same fraction and seed as training, so "val" is the split the run was selected on
    splits = load_data(
        str(data),
        run.preprocessing,
        val_fraction=float(config.get("val_fraction", 0.1)),
        seed=int(config.get("seed", 0)),
    )
    if split == "val":
        return str(data), splits, [splits.val]
    if split == "test":
        if splits.test is None:
            raise PocketvisionError(f"{data}: has no test split; use --split val or all")
        return str(data), splits, [splits.test]
    return str(data), splits, [s for s in (splits.train, splits.val, splits.test) if s is not None]
