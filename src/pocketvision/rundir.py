"""The run directory: what training writes and what evaluate, predict, export, profile and
serve read. The one place that knows its file names.

Layout of ``runs/NAME/``::

    model.json            {"name": ..., "kwargs": {num_classes, in_chans, width_mult, small_input}}
    labels.txt            one class label per line, in logit order
    preprocessing.json    Preprocessing (input_size [C, H, W], mean, std, resize)
    config.json           the TrainConfig that produced the run
    checkpoints/best.safetensors   model weights only (EMA weights when EMA is on)
    checkpoints/last.pt   full training state for --resume (loaded with weights_only=True)
    checkpoints/qat.safetensors   a `train --qat` run's fake-quantised graph (pocketvision.quantize)
    metrics.jsonl, metrics.csv, summary.json, bad_files.txt
    export/               what ``pocketvision export`` writes

Every file is written atomically (temp file + rename), so a killed run never leaves a
half-written file behind. Loading never executes code from a file: weights are safetensors.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from pocketvision.errors import PocketvisionError
from pocketvision.files import read_json, write_atomic, write_json
from pocketvision.preprocess import Preprocessing

MODEL = "model.json"
LABELS = "labels.txt"
PREPROCESSING = "preprocessing.json"
CONFIG = "config.json"
SUMMARY = "summary.json"
BEST = "checkpoints/best.safetensors"
LAST = "checkpoints/last.pt"
QAT_STATE = "checkpoints/qat.safetensors"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
BAD_FILES = "bad_files.txt"
EXPORT = "export"


@dataclass(frozen=True)
class ModelSpec:
    """A registered model name and the create_model keywords that rebuild it."""

    name: str
    kwargs: dict[str, Any]

    def build(self) -> nn.Module:
        from pocketvision import create_model

        return create_model(self.name, **self.kwargs)


@dataclass(frozen=True)
class LoadedRun:
    """A trained model with everything needed to feed it and read its output.

    Attributes:
        path: The run directory.
        model: The model with its best weights, in eval mode, on the CPU.
        spec: What rebuilds the model.
        labels: Class names in logit order.
        preprocessing: How an image becomes the model's input.
        config: config.json (the TrainConfig as a dict), or None for a run made by hand.
        summary: summary.json, or None before training finished.
    """

    path: Path
    model: nn.Module
    spec: ModelSpec
    labels: list[str]
    preprocessing: Preprocessing
    config: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None


def is_run_dir(path: str | Path) -> bool:
    """True when ``path`` is a folder holding a run (its model.json)."""
    return (Path(path) / MODEL).is_file()


def free_run_dir(base: str | Path) -> Path:
    """``base``, or ``base-2``, ``base-3``... the first that does not hold a run yet."""
    base = Path(base)
    out, i = base, 2
    while is_run_dir(out):
        out, i = Path(f"{base}-{i}"), i + 1
    return out


def _optional_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file that a run may not have; a present but broken one is an error."""
    if not path.exists():
        return None
    data = read_json(path)
    if not isinstance(data, dict):
        raise PocketvisionError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's config.json, or None when it has none (a run assembled by hand)."""
    return _optional_json(Path(run_dir) / CONFIG)


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's summary.json, or None when training has not finished."""
    return _optional_json(Path(run_dir) / SUMMARY)


def save_weights(model: nn.Module, path: Path) -> None:
    """Save a model's state dict as safetensors, atomically."""
    save_tensors(model.state_dict(), path)


def save_tensors(tensors: dict[str, Any], path: Path) -> None:
    """Save named tensors as safetensors, atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp))
    os.replace(tmp, path)


def write_labels(path: Path, labels: list[str]) -> None:
    """labels.txt: one label per line, in logit order."""
    write_atomic(path, "\n".join(labels) + "\n")


def write_run_files(
    run_dir: Path, spec: ModelSpec, labels: list[str], preprocessing: Preprocessing
) -> None:
    """Write model.json, labels.txt and preprocessing.json."""
    write_json(run_dir / MODEL, asdict(spec))
    write_labels(run_dir / LABELS, labels)
    write_json(run_dir / PREPROCESSING, asdict(preprocessing))


def _read_spec(path: Path) -> ModelSpec:
    data = read_json(path, f"is {path.parent} a pocketvision run?")
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("name"), str)
        or not isinstance(data.get("kwargs", {}), dict)
    ):
        raise PocketvisionError(f'{path}: expected {{"name": "...", "kwargs": {{...}}}}')
    return ModelSpec(name=data["name"], kwargs=dict(data.get("kwargs", {})))


def _read_preprocessing(path: Path) -> Preprocessing:
    data = read_json(path, f"is {path.parent} a pocketvision run?")
    try:
        return Preprocessing.from_json(data)
    except ValueError as err:
        raise PocketvisionError(f"{path}: {err}") from None


def read_labels(path: Path) -> list[str]:
    """labels.txt's non-empty lines; a missing, binary or empty file is a one-line error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PocketvisionError(f"{path}: missing; is {path.parent} a pocketvision run?") from None
    except UnicodeDecodeError:
        raise PocketvisionError(f"{path}: not UTF-8 text") from None
    labels = [line for line in text.splitlines() if line]
    if not labels:
        raise PocketvisionError(f"{path}: no labels (one class name per line)")
    return labels


def load_run(run_dir: str | Path, weights: str = BEST) -> LoadedRun:
    """Rebuild a trained model from its run directory, in eval mode, on the CPU.

    Raises:
        PocketvisionError: The folder is not a run, has no checkpoint, or a file is corrupt
            or belongs to another model.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise PocketvisionError(f"{run}: no such run directory")
    spec = _read_spec(run / MODEL)
    prep = _read_preprocessing(run / PREPROCESSING)
    labels = read_labels(run / LABELS)
    try:
        model = spec.build()
    except (TypeError, ValueError) as err:
        raise PocketvisionError(f"{run / MODEL}: cannot build {spec.name!r} ({err})") from None
    _check_label_count(run, spec, labels)
    load_weights(model, run / weights)
    return LoadedRun(run, model.eval(), spec, labels, prep, read_config(run), read_summary(run))


def _check_label_count(run: Path, spec: ModelSpec, labels: list[str]) -> None:
    """labels.txt has one line per logit; otherwise predictions would name the wrong class."""
    from pocketvision import model_info

    classes = spec.kwargs.get("num_classes", model_info(spec.name).num_classes)
    if classes != len(labels):
        raise PocketvisionError(
            f"{run / LABELS}: {len(labels)} labels for a model with {classes} classes "
            f"({run / MODEL}); one class name per line, in logit order"
        )


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a safetensors state dict into ``model``, with one-line errors for bad files."""
    if not path.exists():
        raise PocketvisionError(
            f"{path}: no checkpoint; train the run first or finish it with --resume"
        )
    state = read_tensors(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise PocketvisionError(
            f"{path}: checkpoint does not fit model {type(model).__name__} ({first}); "
            "check that model.json beside it names the model and widths it was trained with"
        ) from None


def read_qat_state(run_dir: str | Path) -> dict[str, Any] | None:
    """The state dict of a `train --qat` run's quantisation-aware graph; None for other runs."""
    path = Path(run_dir) / QAT_STATE
    return read_tensors(path) if path.exists() else None


def read_tensors(path: Path) -> dict[str, Any]:
    """A safetensors file's tensors; a corrupt file is a one-line error naming it."""
    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as err:
        raise PocketvisionError(f"{path}: corrupt checkpoint ({err})") from None
