"""The search space: registered models (filtered by ``--models``) x width multiplier x input
resolution x a few recipe knobs, sampled through an Optuna trial (define-by-run).

A model's width is searched continuously from half the narrowest width its family registers
to the widest (MobileNetV2: 0.175 to 1.4; every family builds and runs at 28 px at its
narrowest, tests/search), so names that differ only by width (``mobilenet_v2_035`` ...
``mobilenet_v2_140``) are one choice, not five.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass
from typing import Any

from pocketvision.errors import PocketvisionError

# Bytes one weight takes in the exported file at each --precision (weights only; graph and
# per-channel int8 scales add a few KB, README "Model search").
BYTES_PER_PARAM = {"fp32": 4, "fp16": 2, "int8": 1}
# the deploy runtimes latency is measured in (pocketvision.profile.runtimes)
SEARCH_RUNTIMES = ("onnxruntime", "litert", "executorch")
AUGMENT_CHOICES = ("none", "light", "standard")
LABEL_SMOOTHING = (0.0, 0.2)
WIDTH_STEP = 0.05


@dataclass(frozen=True)
class Candidate:
    """One model choice: a registered name and the width range searched (None: no width)."""

    name: str
    width: tuple[float, float] | None = None


@dataclass(frozen=True)
class SearchSpace:
    """Everything a trial samples from."""

    candidates: tuple[Candidate, ...]
    img_sizes: tuple[int, ...]
    lr: tuple[float, float]  # log-uniform
    augments: tuple[str, ...] = AUGMENT_CHOICES
    label_smoothing: tuple[float, float] = LABEL_SMOOTHING

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def candidate(self, name: str) -> Candidate:
        return next(c for c in self.candidates if c.name == name)


@dataclass(frozen=True)
class TrialChoice:
    """What one trial sampled: the model and its keywords, the resolution and the recipe."""

    model: str
    width_mult: float | None
    img_size: int
    lr: float
    augment: str
    label_smoothing: float


#: A family's searched widths reach down to this share of its narrowest registered width: a
#: budget tighter than every published model (250 KB as an int8 .tflite rules out MobileNet
#: v1 0.25's 291 KB and ShuffleNet v1 0.5's 359 KB) still has models to search
NARROWEST_SHARE = 0.5


def _width_ranges() -> dict[str, tuple[float, float]]:
    """Family -> (narrowest searched, widest registered) width."""
    from pocketvision import list_models, model_info

    ranges: dict[str, tuple[float, float]] = {}
    for name in list_models():
        info = model_info(name)
        if info.width_mult is None:
            continue
        lo, hi = ranges.get(info.family, (info.width_mult, info.width_mult))
        ranges[info.family] = (min(lo, info.width_mult), max(hi, info.width_mult))
    return {f: (round(NARROWEST_SHARE * lo, 3), hi) for f, (lo, hi) in ranges.items()}


def _base_name(name: str, width: float | None) -> str:
    # mobilenet_v2_035 -> mobilenet_v2: the registered names spell the width as _NNN
    suffix = f"_{round(100 * width):03d}" if width is not None else ""
    return name.removesuffix(suffix) if suffix else name


def candidates(models: str) -> tuple[Candidate, ...]:
    """The model choices ``--models`` names (comma-separated shell patterns).

    Raises:
        PocketvisionError: A pattern matches no registered model.
    """
    from pocketvision import list_models, model_info

    names = list_models()
    chosen: list[str] = []
    for pattern in [p.strip() for p in models.split(",") if p.strip()] or [""]:
        found = fnmatch.filter(names, pattern)
        if not found:
            raise PocketvisionError(
                f"--models {pattern!r} matches no registered model; see `pocketvision models`"
            )
        chosen += [n for n in found if n not in chosen]
    ranges = _width_ranges()
    seen: set[tuple[str, str]] = set()
    out = []
    for name in chosen:
        info = model_info(name)
        key = (info.family, _base_name(name, info.width_mult))
        if key in seen:
            continue
        seen.add(key)
        out.append(Candidate(name, ranges[info.family] if info.width_mult is not None else None))
    return tuple(out)


def image_sizes(default: int, fixed: int | None) -> tuple[int, ...]:
    """``--img-size`` when given; photos (decoded to any size) also search half and 3/4 of the
    default; Fashion-MNIST, IDX and digits keep their one size."""
    if fixed is not None:
        return (fixed,)
    if default < 64:
        return (default,)
    return tuple(sorted({default // 2, 3 * default // 4, default}))


def sample(trial: Any, space: SearchSpace) -> TrialChoice:
    """One point of ``space`` chosen by an Optuna trial (conditional width per model)."""
    name = trial.suggest_categorical("model", [c.name for c in space.candidates])
    width = space.candidate(name).width
    width_mult = None
    if width is not None:
        lo, hi = width
        width_mult = lo
        if hi > lo:
            value = trial.suggest_float(f"width_mult.{name}", lo, hi, step=WIDTH_STEP)
            width_mult = round(value, 3)
    sizes = space.img_sizes
    img = sizes[0] if len(sizes) == 1 else trial.suggest_categorical("img_size", list(sizes))
    return TrialChoice(
        model=name,
        width_mult=width_mult,
        img_size=int(img),
        lr=round(trial.suggest_float("lr", *space.lr, log=True), 6),
        augment=trial.suggest_categorical("augment", list(space.augments)),
        label_smoothing=round(trial.suggest_float("label_smoothing", *space.label_smoothing), 4),
    )
