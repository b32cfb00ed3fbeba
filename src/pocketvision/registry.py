"""The model registry: one builder and one published record per registered name.

Every family file registers its builders with :func:`register_model`, passing the
:class:`ModelInfo` that holds the paper's numbers; tests hold each builder to them.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from pocketvision.errors import PocketvisionError

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    """What the paper (or reference release) publishes for one registered model.

    Attributes:
        name: Registered snake_case name, e.g. ``mobilenet_v2_100``.
        family: Family name, e.g. ``MobileNetV2``.
        paper: Paper title.
        authors: First author "et al." or the full short list.
        year: Publication year.
        arxiv: arXiv identifier ("" where there is none).
        table: The table or figure whose numbers this model reproduces.
        input_size: Default input (C, H, W).
        params: Published parameter count (PyTorch convention: BN affine counted, running
            statistics not) at 1000 classes; exact.
        macs: Published multiply-accumulates at ``input_size`` (conv + linear only).
        top1: Published ImageNet top-1 accuracy in percent, or None.
        macs_at: Further (resolution, MACs) pairs the paper lists for this model.
        width_mult: The width multiplier this name stands for (None where not applicable).
        small_input: What ``small_input=True`` changes for this family.
        num_classes: Classes the published params and MACs assume (1000 for ImageNet).
    """

    name: str
    family: str
    paper: str
    authors: str
    year: int
    arxiv: str
    table: str
    input_size: tuple[int, int, int]
    params: int
    macs: int
    top1: float | None
    macs_at: tuple[tuple[int, int], ...] = ()
    width_mult: float | None = None
    small_input: str = ""
    num_classes: int = 1000


_BUILDERS: dict[str, Builder] = {}
_INFOS: dict[str, ModelInfo] = {}


def register_model(info: ModelInfo) -> Callable[[Builder], Builder]:
    """Register a builder under ``info.name``; registering a name twice raises."""

    def decorator(builder: Builder) -> Builder:
        if info.name in _BUILDERS:
            raise ValueError(f"model {info.name!r} is already registered")
        _BUILDERS[info.name] = builder
        _INFOS[info.name] = info
        return builder

    return decorator


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names in sorted order, optionally filtered by a shell-style pattern."""
    names = sorted(_BUILDERS)
    if pattern is None:
        return names
    return [n for n in names if fnmatch.fnmatch(n, pattern)]


def _unknown(name: str) -> PocketvisionError:
    close = difflib.get_close_matches(name, list(_BUILDERS), n=5, cutoff=0.4)
    hint = f"; closest: {', '.join(close)}" if close else ""
    return PocketvisionError(
        f"unknown model {name!r}{hint} (`pocketvision models` lists all {len(_BUILDERS)})"
    )


def model_info(name: str) -> ModelInfo:
    """The published record of a registered model."""
    if name not in _INFOS:
        raise _unknown(name)
    return _INFOS[name]


def create_model(
    name: str,
    *,
    num_classes: int | None = 1000,
    in_chans: int | None = 3,
    width_mult: float | None = None,
    small_input: bool | None = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    Arguments that are None are dropped, so CLI defaults can stay None; any keyword the
    builder does not take raises TypeError.

    Args:
        name: A name from :func:`list_models`.
        num_classes: Classifier outputs.
        in_chans: Input channels (1 for grayscale, 3 for RGB).
        width_mult: Channel multiplier, for families that have one; None keeps the name's own.
        small_input: Adapt the stem for 28-64 px inputs (see each family's ``small_input``).
        **kwargs: Family-specific options (e.g. ``drop_rate``).

    Raises:
        PocketvisionError: Unknown name (the message lists the closest names).
        ValueError: width_mult <= 0, in_chans < 1 or num_classes < 1.
        TypeError: A keyword the model does not take.
    """
    if name not in _BUILDERS:
        raise _unknown(name)
    if width_mult is not None and not width_mult > 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    if in_chans is not None and in_chans < 1:
        raise ValueError(f"in_chans must be >= 1, got {in_chans}")
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    args: dict[str, Any] = {
        "num_classes": num_classes,
        "in_chans": in_chans,
        "width_mult": width_mult,
        "small_input": small_input,
        **kwargs,
    }
    args = {k: v for k, v in args.items() if v is not None}
    builder = _BUILDERS[name]
    try:
        return builder(**args)
    except TypeError as err:
        if "unexpected keyword argument" in str(err):
            raise TypeError(f"{name}: {err}".replace(builder.__name__ + "() ", "")) from None
        raise


# Registers every family whenever the registry is used (the package __init__ is lazy so that
# the NumPy-only pocketvision.scratch never imports torch). Placed last: the family files
# import register_model from this, by then complete, module.
import pocketvision.models  # noqa: E402, F401
