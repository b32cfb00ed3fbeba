"""Published pretrained weights: the table of known checkpoints, converters, download cache.

``create_model(name, pretrained=True | "TAG" | "path/to/file")`` ends in
:func:`load_pretrained`, for every family at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from pocketvision.weights.load import Target, load_into, read_state_dict
from pocketvision.weights.table import (
    CHECKPOINTS,
    Checkpoint,
    checkpoints,
    find_checkpoint,
    layouts_for,
)

__all__ = [
    "CHECKPOINTS",
    "Checkpoint",
    "Loaded",
    "checkpoints",
    "find_checkpoint",
    "load_pretrained",
    "looks_like_file",
    "resolve",
]


@dataclass(frozen=True)
class Loaded:
    """What was loaded: for a run's config.json and model card."""

    tag: str  # the table's tag, or "file"
    source: str  # torchvision, timm, original, or the layout a file was read in
    sha256: str
    path: str
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    input_size: tuple[int, int, int] | None


def looks_like_file(value: str) -> bool:
    """Whether ``pretrained="VALUE"`` names a weights file rather than a tag."""
    return (
        "/" in value
        or "\\" in value
        or Path(value).suffix in {".pth", ".pt", ".bin", ".safetensors"}
        or Path(value).is_file()
    )


def resolve(
    model: str, pretrained: bool | str, *, progress: bool = True
) -> tuple[Path, Checkpoint | None]:
    """The file ``pretrained`` means for ``model``: a local file, or the cached download."""
    from pocketvision.weights.download import fetch

    if isinstance(pretrained, str) and looks_like_file(pretrained):
        return Path(pretrained).expanduser(), None
    ckpt = find_checkpoint(model, pretrained)
    path, _ = fetch(ckpt, progress=progress)
    return path, ckpt


def load_pretrained(
    model: nn.Module,
    name: str,
    pretrained: bool | str,
    *,
    first_conv: str,
    classifier: str,
    canonical: Callable[[], nn.Module],
) -> Loaded:
    """Load ``pretrained`` into ``model`` (built by the registry for ``name``)."""
    from pocketvision.weights.download import sha256_of

    path, ckpt = resolve(name, pretrained)
    state = read_state_dict(path)
    layouts = [ckpt.layout] if ckpt else layouts_for(name)
    layout = load_into(model, state, Target(name, first_conv, classifier, canonical), layouts)
    loaded = Loaded(
        tag=ckpt.tag if ckpt else "file",
        source=ckpt.source if ckpt else layout.split(".")[0],
        sha256=sha256_of(path),
        path=str(path),
        mean=ckpt.mean if ckpt else None,
        std=ckpt.std if ckpt else None,
        input_size=ckpt.input_size if ckpt else None,
    )
    # read by training's records (config.json, model card)
    object.__setattr__(model, "pretrained", loaded)
    return loaded
