"""Training state on disk: last.pt for --resume, and --init weights for transfer learning.

last.pt holds only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``, which cannot execute code from the file. It is written
through a temp file and a rename, so a kill -9 at any moment leaves the previous one intact.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from pocketvision.errors import PocketvisionError
from pocketvision.files import write_atomic
from pocketvision.rundir import BEST, LABELS, read_labels


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write a training-state dict atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        # weights_only unpickling of a hostile or damaged file raises many types (found by
        # fuzz/harnesses.py: TypeError, KeyError, IndexError, struct.error, ...), all "bad file"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PocketvisionError(f"{path}: corrupt or unsafe checkpoint ({first[:160]})") from None


def load_state(path: Path) -> dict[str, Any]:
    """Read last.pt; a one-line error when it is corrupt or not ours."""
    state = _torch_load(path)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise PocketvisionError(f"{path}: not a pocketvision training checkpoint")
    return state


def read_weights(path_str: str) -> tuple[Path, dict[str, torch.Tensor]]:
    """A state dict from a run folder, a .safetensors file, last.pt, or a torch state dict."""
    path = Path(path_str).expanduser()
    if path.is_dir():
        path = path / BEST
    if not path.is_file():
        raise PocketvisionError(
            f"{path_str}: no such checkpoint; give a run folder, a .safetensors or a .pt file"
        )
    if path.suffix == ".safetensors":
        try:
            state: Any = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise PocketvisionError(f"{path}: corrupt checkpoint ({err})") from None
    else:
        state = _torch_load(path)
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PocketvisionError(f"{path}: not a state dict of tensors")
    # DDP and torch.compile prefixes
    return path, {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}


def _labels_beside(path: Path) -> list[str] | None:
    """labels.txt of the run a checkpoint file belongs to, if any."""
    for folder in (path.parent, path.parent.parent):
        labels = folder / LABELS
        if labels.is_file():
            try:
                return read_labels(labels)
            except PocketvisionError:
                return None  # unreadable labels: treat as other classes, train a fresh head
    return None


def load_init(
    model: nn.Module, path_str: str, model_name: str, head: set[str], classes: list[str]
) -> tuple[int, list[str]]:
    """Load a checkpoint's weights except the classifier head; skip tensors whose shape differs.

    The head (``head``: its parameter names) is kept only when the checkpoint's run has the same
    labels in the same order; otherwise a fresh head is trained, as in Model Maker and Turi
    Create, because a head for other classes is confidently wrong from the first step.

    Returns:
        (number of tensors loaded, names left at their fresh initialisation).

    Raises:
        PocketvisionError: Corrupt file, or fewer than half of the model's tensors fit (a
            checkpoint of another model).
    """
    path, state = read_weights(path_str)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(fits) < len(own) / 2:
        raise PocketvisionError(
            f"{path}: checkpoint does not fit {model_name} (only {len(fits)} of {len(own)} "
            "tensors match); is it a checkpoint of another model or width?"
        )
    if _labels_beside(path) != classes:
        fits = {k: v for k, v in fits.items() if k not in head}
    model.load_state_dict(fits, strict=False)
    return len(fits), sorted(set(own) - set(fits))
