"""The model behind ``pocketvision serve``: predictions, the model card and the ONNX file.

Nothing here imports FastAPI, so the same functions serve the HTTP routes and Python callers.
Every function that touches a file takes its path from the run directory the server was started
with, never from a request.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import torch
from PIL import Image

from pocketvision.errors import PocketvisionError
from pocketvision.layers.reparameterize import deploy_form
from pocketvision.preprocess import decode_uint8, normalize
from pocketvision.rundir import BEST, LoadedRun, load_run

#: The cached ONNX export lives here, inside the run directory.
ONNX_FILE = "web/model.onnx"
#: Files of the run the model card may show; a request can only ever name these keys.
CONFUSION_FILE = "confusion_matrix.png"


def png_data_url(array: np.ndarray) -> str:
    """uint8 (H, W), (H, W, 3) or (C, H, W) with C in (1, 3) -> a ``data:image/png`` URL."""
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    elif array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    e = np.exp(shifted)
    out: np.ndarray = e / e.sum()
    return out


@dataclass
class ServedModel:
    """A loaded run, ready to answer predictions from any thread.

    Attributes:
        run: The run as :func:`pocketvision.rundir.load_run` rebuilt it (eval mode, CPU).
        onnx_path: The ONNX export the browser runs, or None when it could not be made.
        onnx_error: Why there is no ONNX file, shown on the page.
    """

    run: LoadedRun
    onnx_path: Path | None = None
    onnx_error: str | None = None
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.run.path

    def predict(self, data: bytes, top_k: int = 5) -> dict[str, Any]:
        """Classify one encoded image.

        Args:
            data: The file's bytes (any format Pillow decodes).
            top_k: How many labels to return, most probable first.

        Returns:
            ``predictions`` ([{label, index, probability}]), ``latency_ms`` (decode + model),
            ``model_ms``, ``model_input`` (the uint8 image at the model's size, as a PNG data
            URL: exactly what gets normalised) and ``input_stats`` (min/max/mean after
            normalisation).

        Raises:
            pocketvision.preprocess.BadImageError: not an image, truncated, or a bomb.
        """
        start = time.perf_counter()
        prep = self.run.preprocessing
        uint8 = decode_uint8(data, prep)  # (C, H, W), the same path training took
        x = normalize(uint8, prep).astype(np.float32)
        model_start = time.perf_counter()
        with torch.inference_mode():
            logits = self.run.model(torch.from_numpy(x[None]))[0].numpy().astype(np.float64)
        end = time.perf_counter()
        probs = softmax(logits)
        order = np.argsort(-probs, kind="stable")[: max(1, top_k)]
        return {
            "predictions": [
                {
                    "label": self.run.labels[i],
                    "index": int(i),
                    "probability": float(probs[i]),
                }
                for i in order
            ],
            "latency_ms": (end - start) * 1000.0,
            "model_ms": (end - model_start) * 1000.0,
            "model_input": png_data_url(uint8),
            "input_stats": {
                "shape": list(x.shape),
                "min": float(x.min()),
                "max": float(x.max()),
                "mean": float(x.mean()),
            },
        }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _size(path: Path | None) -> int | None:
    return path.stat().st_size if path is not None and path.is_file() else None


# what the card shows of summary.json (training) and of metrics.json (`pocketvision evaluate`)
TRAINING_KEYS = (
    "data",
    "best_val_accuracy",
    "best_epoch",
    "test_accuracy",
    "epochs",
    "num_train",
    "num_val",
    "num_test",
    "seconds",
    "data_inspection",  # what training's data check found (duplicates, balance)
    "pretrained",  # the published weights it started from: tag, source, sha256
)
EVALUATION_KEYS = ("data", "split", "accuracy", "top5_accuracy", "confusion_matrix")


def model_card(served: ServedModel) -> dict[str, Any]:
    """What the page's model card shows, read from the run directory and the registry.

    Accuracy comes from summary.json (written by training) and, when ``pocketvision evaluate``
    has run, the confusion matrix from metrics.json.
    """
    from pocketvision import model_info
    from pocketvision.profile import count_macs, count_params

    run = served.run
    info = model_info(run.spec.name)
    prep = run.preprocessing
    summary = run.summary or {}
    metrics = _read_json(run.path / "metrics.json")
    return {
        "run": run.path.name,
        "model": run.spec.name,
        "kwargs": run.spec.kwargs,
        "family": info.family,
        "paper": info.paper,
        "authors": info.authors,
        "year": info.year,
        "arxiv": info.arxiv,
        "table": info.table,
        "published": {
            "params": info.params,
            "macs": info.macs,
            "input_size": list(info.input_size),
            "num_classes": info.num_classes,
            "top1": info.top1,
        },
        "params": count_params(run.model),
        "macs": count_macs(run.model, prep.input_size),
        "input_size": list(prep.input_size),
        "color_mode": prep.color_mode,
        "mean": list(prep.mean),
        "std": list(prep.std),
        "resize": prep.resize,
        # the browser copies Pillow's resize, whose pass order changed in Pillow 13
        "pillow_version": PIL.__version__,
        "labels": run.labels,
        "files": {
            "checkpoint_bytes": _size(run.path / BEST),
            "onnx_bytes": _size(served.onnx_path),
        },
        "onnx": served.onnx_path is not None,
        "onnx_error": served.onnx_error,
        "training": {key: summary.get(key) for key in TRAINING_KEYS},
        "evaluation": None
        if metrics is None
        else {key: metrics.get(key) for key in EVALUATION_KEYS},
        "confusion_png": (run.path / CONFUSION_FILE).is_file(),
    }


def load_served(run_dir: str | Path, *, export_onnx: bool = True) -> ServedModel:
    """Load a run for serving; export it to ONNX (cached in RUN/web/) for the browser.

    Raises:
        PocketvisionError: the folder is not a loadable run.
    """
    from pocketvision.web.onnx_cache import ensure_onnx

    # what runs is the inference form (MobileOne's branches folded); ONNX export folds too
    loaded = load_run(run_dir)
    run = dataclasses.replace(loaded, model=deploy_form(loaded.model))
    served = ServedModel(run=run)
    if export_onnx:
        try:
            served.onnx_path = ensure_onnx(run, run.path / ONNX_FILE)
        except PocketvisionError as err:
            # the page still works with server inference; the card says why the browser can't
            served.onnx_error = str(err)
    else:
        served.onnx_error = "serve was started with --no-onnx"
    served.card = model_card(served)
    return served
