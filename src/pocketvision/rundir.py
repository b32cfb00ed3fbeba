"""The run directory: what training writes and what evaluate, predict, export, profile and
serve read.

Layout of ``runs/NAME/``::

    model.json            {"name": ..., "kwargs": {num_classes, in_chans, width_mult, small_input}}
    labels.txt            one class label per line, in logit order
    preprocessing.json    Preprocessing (input_size [C, H, W], mean, std, resize)
    config.json           the TrainConfig that produced the run
    checkpoints/best.safetensors   model weights only (EMA weights when EMA is on)
    checkpoints/last.pt   full training state for --resume (loaded with weights_only=True)
    metrics.jsonl, metrics.csv, summary.json, bad_files.txt

Every file is written atomically (temp file + rename), so a killed run never leaves a
half-written file behind. Loading never executes code from a file: weights are safetensors.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from pocketvision import create_model
from pocketvision.errors import PocketvisionError

BEST = "checkpoints/best.safetensors"


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes a model input, identically in training, prediction and export.

    Attributes:
        input_size: (C, H, W); C is 1 (grayscale, PIL mode "L") or 3 (RGB).
        mean: Per-channel mean subtracted after scaling pixels to [0, 1].
        std: Per-channel standard deviation divided by after that.
        resize: "squash" (resize to H x W, ignoring aspect ratio; what training uses).
    """

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str = "squash"

    @property
    def color_mode(self) -> str:
        return "L" if self.input_size[0] == 1 else "RGB"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(
            input_size=(
                int(data["input_size"][0]),
                int(data["input_size"][1]),
                int(data["input_size"][2]),
            ),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            resize=data.get("resize", "squash"),
        )


@dataclass(frozen=True)
class ModelSpec:
    """A registered model name and the create_model keywords that rebuild it."""

    name: str
    kwargs: dict[str, Any]

    def build(self) -> nn.Module:
        return create_model(self.name, **self.kwargs)


@dataclass(frozen=True)
class LoadedRun:
    """A trained model with everything needed to feed it and read its output."""

    path: Path
    model: nn.Module
    spec: ModelSpec
    labels: list[str]
    preprocessing: Preprocessing


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file via a temp file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2) + "\n")


def save_weights(model: nn.Module, path: Path) -> None:
    """Save a state dict as safetensors, atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp))
    os.replace(tmp, path)


def write_run_files(
    run_dir: Path, spec: ModelSpec, labels: list[str], preprocessing: Preprocessing
) -> None:
    """Write model.json, labels.txt and preprocessing.json."""
    write_json(run_dir / "model.json", asdict(spec))
    write_atomic(run_dir / "labels.txt", "\n".join(labels) + "\n")
    write_json(run_dir / "preprocessing.json", asdict(preprocessing))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PocketvisionError(f"{path}: missing; is {path.parent} a pocketvision run?") from None
    except json.JSONDecodeError as err:
        raise PocketvisionError(f"{path}: not valid JSON ({err.msg})") from None


def load_run(run_dir: str | Path, weights: str = BEST) -> LoadedRun:
    """Rebuild a trained model from its run directory, in eval mode, on the CPU.

    Raises:
        PocketvisionError: The folder is not a run, has no checkpoint, or the checkpoint is
            corrupt or belongs to another model.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise PocketvisionError(f"{run}: no such run directory")
    spec_json = _read_json(run / "model.json")
    spec = ModelSpec(name=spec_json["name"], kwargs=dict(spec_json["kwargs"]))
    prep = Preprocessing.from_json(_read_json(run / "preprocessing.json"))
    labels_path = run / "labels.txt"
    if not labels_path.exists():
        raise PocketvisionError(f"{labels_path}: missing; is {run} a pocketvision run?")
    labels = [line for line in labels_path.read_text().splitlines() if line]
    model = spec.build()
    load_weights(model, run / weights)
    return LoadedRun(run, model.eval(), spec, labels, prep)


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a safetensors state dict into ``model``, with one-line errors for bad files."""
    if not path.exists():
        raise PocketvisionError(
            f"{path}: no checkpoint; train the run first or finish it with --resume"
        )
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise PocketvisionError(f"{path}: corrupt checkpoint ({err})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise PocketvisionError(
            f"{path}: checkpoint does not fit model {type(model).__name__} ({first}); "
            "model.json beside it must name the model and widths it was trained with"
        ) from None
