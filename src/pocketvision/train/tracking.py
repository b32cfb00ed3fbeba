"""Experiment tracking: ``--log tensorboard`` and ``--log mlflow`` (optional extra ``track``).

Both get the same things: the resolved config at the start, every epoch's metrics row, and at
the end the model card (markdown, from the summary) and the confusion matrix of the split the
summary's per-class recall is measured on (test, else val), as a PNG.

- TensorBoard: event files in ``RUN/tensorboard`` (``tensorboard --logdir runs``). Scalars
  are ``train/loss``, ``train/accuracy``, ``val/loss``, ``val/accuracy``, ``lr`` ...
- MLflow: one MLflow run per pocketvision run, in experiment "pocketvision", through
  :class:`mlflow.MlflowClient` (no global active run). The tracking store is ``--tracking-uri``
  when given (a server, a database), else a local file store ``./mlruns``
  (``mlflow ui --backend-store-uri ./mlruns``). The MLflow run id is kept in the run folder, so
  ``--resume`` continues the same MLflow run.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from pocketvision.console import captured
from pocketvision.errors import PocketvisionError
from pocketvision.files import read_json, write_json
from pocketvision.train.config import TRACKERS

MLFLOW_EXPERIMENT = "pocketvision"
# beside the run's other files: the MLflow run a resumed run continues
MLFLOW_RUN_FILE = "mlflow_run.json"


def parse_log(value: str | None) -> list[str]:
    """``--log`` as a list: "tensorboard", "mlflow" or both, comma-separated."""
    if not value or value == "none":
        return []
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise PocketvisionError(
            f"--log {value}: unknown tracker {unknown[0]!r}; use {' or '.join(TRACKERS)} "
            "(both: tensorboard,mlflow)"
        )
    return list(dict.fromkeys(names))


class Tracker(Protocol):
    def start(self, config: dict[str, Any]) -> None: ...
    def epoch(self, row: dict[str, float]) -> None: ...
    def finish(self, card: str, confusion_png: bytes | None, summary: dict[str, Any]) -> None: ...


def _scalar_name(key: str) -> str:
    for split in ("train", "val"):
        if key.startswith(split + "_"):
            return f"{split}/{key.removeprefix(split + '_')}"
    return key


class TensorBoardTracker:
    """Event files written by torch.utils.tensorboard's SummaryWriter."""

    def __init__(self, out: Path) -> None:
        try:
            with captured():
                from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise PocketvisionError(
                "--log tensorboard needs tensorboard: pip install 'pocketvision[track]'"
            ) from None
        self.writer = SummaryWriter(str(out / "tensorboard"))

    def start(self, config: dict[str, Any]) -> None:
        self.writer.add_text("config", f"```json\n{json.dumps(config, indent=2)}\n```", 0)

    def epoch(self, row: dict[str, float]) -> None:
        step = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(_scalar_name(key), value, step)
        self.writer.flush()

    def finish(self, card: str, confusion_png: bytes | None, summary: dict[str, Any]) -> None:
        step = int(summary.get("epochs", 0))
        self.writer.add_text("model_card", card, step)
        if confusion_png is not None:
            from PIL import Image

            image = np.asarray(Image.open(io.BytesIO(confusion_png)).convert("RGB"))
            self.writer.add_image("confusion_matrix", image, step, dataformats="HWC")
        self.writer.close()


def _flat_params(config: dict[str, Any]) -> dict[str, str]:
    # MLflow params are strings of at most 6,000 characters
    return {k: str(v)[:6000] for k, v in config.items()}


class MLflowTracker:
    """An MLflow run written through MlflowClient."""

    def __init__(self, out: Path, tracking_uri: str | None) -> None:
        try:
            with captured():
                from mlflow.tracking import MlflowClient
        except ImportError:
            raise PocketvisionError(
                "--log mlflow needs mlflow: pip install 'pocketvision[track]'"
            ) from None
        uri = tracking_uri or (Path("mlruns").resolve().as_uri())
        if uri.startswith("file:"):
            # MLflow 3 keeps the file store in maintenance mode and refuses it unless asked
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.out, self.uri = out, uri
        with captured():
            self.client = MlflowClient(tracking_uri=uri)
            self.run_id = self._run_id(out)

    def _run_id(self, out: Path) -> str:
        saved = out / MLFLOW_RUN_FILE
        if saved.exists():
            record = read_json(saved)
            if record.get("tracking_uri") == self.uri:
                return str(record["run_id"])
        experiment = self.client.get_experiment_by_name(MLFLOW_EXPERIMENT)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(MLFLOW_EXPERIMENT)
        )
        run = self.client.create_run(experiment_id, run_name=out.name)
        out.mkdir(parents=True, exist_ok=True)
        write_json(saved, {"tracking_uri": self.uri, "run_id": run.info.run_id})
        return str(run.info.run_id)

    def start(self, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in _flat_params(config).items()]
        with captured():
            existing = self.client.get_run(self.run_id).data.params
            if not existing:  # a resumed run logged them already (params cannot change)
                self.client.log_batch(self.run_id, params=params)
                self.client.log_dict(self.run_id, config, "config.json")

    def epoch(self, row: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(row["epoch"])
        metrics = [Metric(k, float(v), now, step) for k, v in row.items() if k != "epoch"]
        with captured():
            self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, card: str, confusion_png: bytes | None, summary: dict[str, Any]) -> None:
        with captured():
            self.client.log_text(self.run_id, card, "model_card.md")
            self.client.log_dict(self.run_id, summary, "summary.json")
            if confusion_png is not None:
                from PIL import Image

                image = Image.open(io.BytesIO(confusion_png)).convert("RGB")
                self.client.log_image(self.run_id, image, "confusion_matrix.png")
            self.client.set_terminated(self.run_id)


class Tracking:
    """Every tracker ``--log`` names, fed together; empty (and free) without ``--log`` or off
    the main process."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers

    @classmethod
    def open(
        cls, log: str | None, out: Path, tracking_uri: str | None, *, main: bool = True
    ) -> Tracking:
        if not main:
            return cls([])
        made: list[Tracker] = []
        for name in parse_log(log):
            if name == "tensorboard":
                made.append(TensorBoardTracker(out))
            else:
                made.append(MLflowTracker(out, tracking_uri))
        return cls(made)

    def start(self, config: dict[str, Any]) -> None:
        for t in self.trackers:
            t.start(config)

    def epoch(self, row: dict[str, float]) -> None:
        for t in self.trackers:
            t.epoch(row)

    def finish(
        self, summary: dict[str, Any], matrix: torch.Tensor | None, classes: list[str]
    ) -> None:
        """The model card and the confusion matrix of the split recall was measured on."""
        if not self.trackers:
            return
        card = model_card(summary)
        split = (summary.get("per_class_recall") or {}).get("split", "held-out")
        png = None if matrix is None else confusion_png(matrix, classes, f"{split} split")
        for t in self.trackers:
            t.finish(card, png, summary)


def confusion_png(confusion: torch.Tensor, classes: list[str], title: str) -> bytes:
    """A confusion matrix (rows: true class, columns: predicted) drawn as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    n = len(classes)
    matrix = confusion.cpu().numpy()
    side = min(12.0, 2.5 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(side, side), dpi=80)
    ax.imshow(matrix, cmap="Blues")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels(classes, rotation=90)
    ax.set_yticklabels(classes)
    if n <= 30:
        top = matrix.max() or 1
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(
                j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black"
            )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def model_card(summary: dict[str, Any]) -> str:
    """The run's model card in markdown, from its summary."""
    lines = [
        f"# {summary['model']} on {summary['data']}",
        "",
        f"- parameters: {summary['params']:,}",
        f"- classes: {summary['classes']}; images: {summary['num_train']} train, "
        f"{summary['num_val']} val, {summary['num_test']} test",
        f"- best val accuracy: {summary['best_val_accuracy']} (epoch {summary['best_epoch']})",
        f"- test accuracy: {summary['test_accuracy']}",
        f"- epochs: {summary['epochs']}, {summary['seconds']} s on {summary['device']}",
    ]
    weights = summary.get("pretrained")
    if weights:
        lines.append(
            f"- started from {weights['source']} weights {weights['tag']} "
            f"(sha256 {weights['sha256'][:16]}...)"
        )
    recall = summary.get("per_class_recall")
    if recall:
        lines += ["", f"## Recall per class ({recall['split']} split)", ""]
        lines += [f"- {label}: {value}" for label, value in recall["recall"].items()]
        lines.append(f"- macro recall: {recall['macro_recall']}")
    inspection = summary.get("data_inspection")
    if inspection:
        lines += ["", "## Data check", ""]
        lines += [f"- {key}: {value}" for key, value in inspection.items()]
    return "\n".join(lines) + "\n"
