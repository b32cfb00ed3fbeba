"""The model registry: one shared builder, and one published record per registered name.

A family file describes its architecture once, as a :class:`Family` (the class, the paper,
what ``small_input`` changes, the keywords a caller may set, where the first convolution and
the classifier live), and registers each variant with :func:`register_model`: a name, the
constructor keywords it fixes (a stage table, groups, an SE layer) and its published numbers.
Every name is then built by :func:`build_model`, so num_classes, in_chans, small_input,
width_mult and the family's own keywords are handled in one place for every family; so will
pretrained weights be (issue 16). Each name's builder (:func:`model_builder`) takes its
docstring and signature from its :class:`ModelInfo`: a published number is written once.

This module imports no model family: the package (``pocketvision.create_model``) imports
``pocketvision.models``, whose files register themselves here.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
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
        width_mult: The width multiplier this name stands for (None where the family has
            none; then ``width_mult`` is not a keyword of this model).
        small_input: What ``small_input=True`` changes for this family.
        num_classes: Classes the published params and MACs assume (1000 for ImageNet).
        note: Where published figures disagree or round, in a sentence or two; it ends the
            builder's docstring.
        first_conv: Module path of the first convolution (the one that sees ``in_chans``),
            or of the block holding every convolution that does (MobileOne's stem, whose
            train-time branches all read the input).
        classifier: Module path of the layer :meth:`reset_classifier` replaces.
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
    note: str = ""
    first_conv: str = ""
    classifier: str = ""


@dataclass(frozen=True)
class Paper:
    """The publication a family reproduces."""

    title: str
    authors: str
    year: int
    arxiv: str = ""  # "" where there is none


@dataclass(frozen=True)
class Family:
    """What every registered variant of one architecture shares, and how to build it.

    Attributes:
        name: ``ModelInfo.family``, e.g. ``MobileNetV2``.
        model: The family's class, called with keywords only; it takes num_classes,
            in_chans and small_input (and width_mult where a variant has a width).
        paper: The paper behind the numbers.
        small_input: What ``small_input=True`` changes, in a sentence.
        first_conv: Module path of the first convolution, e.g. ``stem.0``: the one whose
            filters in_chans adaptation of pretrained weights rewrites (or the block holding
            every convolution that reads the input, e.g. MobileOne's ``stem``).
        classifier: Module path of the classifier, e.g. ``head.fc``: the layer a fresh head
            replaces when num_classes differs from the weights'.
        options: Keywords of ``model`` a caller may set beyond the common ones (e.g.
            ``drop_rate``); their defaults are the class's own.
        input_size: Default input (C, H, W) the published numbers assume.
        num_classes: Classes the published numbers assume.
    """

    name: str
    model: Callable[..., nn.Module]
    paper: Paper
    small_input: str
    first_conv: str
    classifier: str
    options: tuple[str, ...] = ()
    input_size: tuple[int, int, int] = (3, 224, 224)
    num_classes: int = 1000


@dataclass(frozen=True)
class _Entry:
    info: ModelInfo
    family: Family
    fixed: Mapping[str, Any]  # constructor keywords the name fixes; a caller cannot set them
    keywords: tuple[str, ...]  # what a caller may set, in signature order
    builder: Builder


_ENTRIES: dict[str, _Entry] = {}


def register_model(
    family: Family,
    name: str,
    fixed: Mapping[str, Any] | None = None,
    *,
    params: int,
    macs: int,
    top1: float | None,
    table: str,
    macs_at: tuple[tuple[int, int], ...] = (),
    width_mult: float | None = None,
    note: str = "",
) -> Builder:
    """Register one variant of ``family`` under ``name`` and return its builder.

    Args:
        family: The architecture and paper this variant belongs to.
        name: Registered snake_case name carrying the variant.
        fixed: Constructor keywords the name stands for (stage table, groups, se_layer...).
        params: Published (exact) parameter count at ``family.num_classes``.
        macs: Published MACs at ``family.input_size``.
        top1: Published ImageNet top-1, or None.
        table: The table or figure the numbers come from.
        macs_at: Further (resolution, MACs) pairs the paper lists.
        width_mult: The width this name stands for; None where the family has no width.
        note: Where published figures disagree or round (ends the builder's docstring).

    Raises:
        ValueError: The name is taken, or a keyword is not one of the class's.
    """
    if name in _ENTRIES:
        raise ValueError(f"model {name!r} is already registered")
    fixed = MappingProxyType(dict(fixed or {}))
    width = ("width_mult",) if width_mult is not None else ()
    keywords = ("num_classes", "in_chans", *width, "small_input", *family.options)
    _check_keywords(name, family, fixed, keywords)
    info = ModelInfo(
        name=name,
        family=family.name,
        paper=family.paper.title,
        authors=family.paper.authors,
        year=family.paper.year,
        arxiv=family.paper.arxiv,
        table=table,
        input_size=family.input_size,
        params=params,
        macs=macs,
        top1=top1,
        macs_at=macs_at,
        width_mult=width_mult,
        small_input=family.small_input,
        num_classes=family.num_classes,
        note=note,
        first_conv=family.first_conv,
        classifier=family.classifier,
    )
    builder = _make_builder(info, family, keywords)
    _ENTRIES[name] = _Entry(info, family, fixed, keywords, builder)
    return builder


def _check_keywords(
    name: str, family: Family, fixed: Mapping[str, Any], keywords: tuple[str, ...]
) -> None:
    # At import time, so a typo in a family file fails every test instead of one call.
    takes = set(inspect.signature(family.model).parameters)
    missing = sorted((set(fixed) | set(keywords)) - takes)
    if missing:
        raise ValueError(f"{name}: {family.model.__name__} takes no keyword {missing[0]!r}")
    both = sorted(set(fixed) & set(keywords))
    if both:
        raise ValueError(f"{name}: {both[0]!r} is both fixed by the name and a caller's option")


def _make_builder(info: ModelInfo, family: Family, keywords: tuple[str, ...]) -> Builder:
    def builder(**kwargs: Any) -> nn.Module:
        return build_model(info.name, **kwargs)

    signature = inspect.signature(family.model).parameters.values()
    defaults = {p.name: p.default for p in signature if p.default is not p.empty}
    defaults.update(_name_defaults(info))
    builder.__name__ = builder.__qualname__ = info.name
    builder.__doc__ = _docstring(info, family, {k: defaults[k] for k in keywords})
    # inspect.signature (and so help()) reads __signature__: the keywords this name takes
    builder.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=defaults[k])
            for k in keywords
        ],
        return_annotation=family.model,
    )
    return builder


def _name_defaults(info: ModelInfo) -> dict[str, Any]:
    """The common keywords' defaults for one name: its published classes, channels, width."""
    defaults: dict[str, Any] = {
        "num_classes": info.num_classes,
        "in_chans": info.input_size[0],
        "small_input": False,
    }
    if info.width_mult is not None:
        defaults["width_mult"] = info.width_mult
    return defaults


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """The one builder behind every registered name.

    Arguments that are None are dropped; the rest must be keywords this name takes (see
    ``inspect.signature(model_builder(name))``). The class is called with the name's fixed
    keywords, its published num_classes / in_chans / width_mult as defaults, and the caller's
    keywords over those.

    Raises:
        PocketvisionError: Unknown name (the message lists the closest names).
        ValueError: width_mult <= 0, in_chans < 1 or num_classes < 1.
        TypeError: A keyword the model does not take; the message names the model.
    """
    entry = _entry(name)
    pretrained = kwargs.pop("pretrained", None)
    args = {k: v for k, v in kwargs.items() if v is not None}
    _check_values(args)
    unknown = sorted(set(args) - set(entry.keywords))
    if unknown:
        raise TypeError(
            f"{name}: unexpected keyword argument {unknown[0]!r} "
            f"(takes {', '.join(entry.keywords)})"
        )
    model = entry.family.model(**{**entry.fixed, **_name_defaults(entry.info), **args})
    if pretrained is not None and pretrained is not False:
        # Once for every family: the model is built at the caller's num_classes / in_chans,
        # then the checkpoint loads with its first conv's filters (info.first_conv) summed
        # to in_chans and its classifier (info.classifier) left fresh when num_classes
        # differs; `canonical` builds the small_input=False layout the converters target.
        from pocketvision.weights import load_pretrained

        def canonical() -> nn.Module:
            plain = {**entry.fixed, **_name_defaults(entry.info), **args, "small_input": False}
            return entry.family.model(**plain)

        load_pretrained(
            model,
            name,
            pretrained,
            first_conv=entry.info.first_conv,
            classifier=entry.info.classifier,
            canonical=canonical,
        )
    return model


def _check_values(args: Mapping[str, Any]) -> None:
    width_mult = args.get("width_mult")
    if width_mult is not None and not width_mult > 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    if args.get("in_chans", 1) < 1:
        raise ValueError(f"in_chans must be >= 1, got {args['in_chans']}")
    if args.get("num_classes", 1) < 1:
        raise ValueError(f"num_classes must be >= 1, got {args['num_classes']}")


def create_model(
    name: str,
    *,
    num_classes: int | None = 1000,
    in_chans: int | None = 3,
    width_mult: float | None = None,
    small_input: bool | None = False,
    pretrained: bool | str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    Arguments that are None are dropped, so CLI defaults can stay None; any keyword the
    model does not take raises TypeError.

    Args:
        name: A name from :func:`list_models`.
        num_classes: Classifier outputs.
        in_chans: Input channels (1 for grayscale, 3 for RGB).
        width_mult: Channel multiplier, for families that have one; None keeps the name's own.
        small_input: Adapt the stem for 28-64 px inputs (see each family's ``small_input``).
        pretrained: True (the model's default published checkpoint), a tag from
            ``pocketvision weights``, or a weights file (.pth, .bin, .safetensors; in its
            source's own layout or ours). None / False: random initialisation.
        **kwargs: Family-specific options (e.g. ``drop_rate``).

    Raises:
        PocketvisionError: Unknown name (the message lists the closest names).
        ValueError: width_mult <= 0, in_chans < 1 or num_classes < 1.
        TypeError: A keyword the model does not take.
    """
    return build_model(
        name,
        num_classes=num_classes,
        in_chans=in_chans,
        width_mult=width_mult,
        small_input=small_input,
        pretrained=pretrained,
        **kwargs,
    )


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names in sorted order, optionally filtered by a shell-style pattern."""
    names = sorted(_ENTRIES)
    if pattern is None:
        return names
    return [n for n in names if fnmatch.fnmatch(n, pattern)]


def model_info(name: str) -> ModelInfo:
    """The published record of a registered model."""
    return _entry(name).info


def model_builder(name: str) -> Builder:
    """The builder of a registered name: ``build_model(name, **kwargs)`` with its own
    signature and a docstring made from its :class:`ModelInfo` (what ``help()`` shows)."""
    return _entry(name).builder


def _entry(name: str) -> _Entry:
    if name in _ENTRIES:
        return _ENTRIES[name]
    if not _ENTRIES:
        raise PocketvisionError(
            f"unknown model {name!r}: no model is registered yet; use pocketvision.create_model "
            "(or import pocketvision.models first)"
        )
    close = difflib.get_close_matches(name, list(_ENTRIES), n=5, cutoff=0.4)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise PocketvisionError(
        f"unknown model {name!r}{hint} (`pocketvision models` lists all {len(_ENTRIES)})"
    )


_COMMON_HELP = {
    "num_classes": "Classifier outputs.",
    "in_chans": "Input channels (1 for grayscale, 3 for RGB).",
    "width_mult": "Channel multiplier.",
}


def count_text(n: int) -> str:
    """A published count as written in a docstring: exact, in M or G past a million.

    >>> count_text(818_900_000), count_text(4_090_000_000), count_text(416_520)
    ('818.9M', '4.09G', '416,520')
    """
    if n < 1_000_000:
        return f"{n:,}"
    scale, unit = (10**9, "G") if n >= 10**9 else (10**6, "M")
    return f"{(Decimal(n) / scale).normalize():f}{unit}"


def _docstring(info: ModelInfo, family: Family, defaults: Mapping[str, Any]) -> str:
    c, h, w = info.input_size
    at = "".join(f", {count_text(m)} at {r} px" for r, m in info.macs_at)
    top1 = f"; ImageNet top-1 {info.top1}%" if info.top1 is not None else ""
    arxiv = f", arXiv:{info.arxiv}" if info.arxiv else ""
    paragraphs = [
        f"{info.family} {info.name}: {info.params:,} params, {count_text(info.macs)} MACs at "
        f"{c}x{h}x{w}{at} ({info.num_classes} classes){top1}.",
        f'{info.authors}. "{info.paper}". {info.year}{arxiv}; {info.table}.',
        info.note,
    ]
    lines = [_wrap(p) + "\n" for p in paragraphs if p]
    lines.append("Keyword Args:")
    for key, default in defaults.items():
        text = info.small_input if key == "small_input" else _COMMON_HELP.get(key)
        text = text or f"See {family.model.__name__}."
        lines.append(_wrap(f"{key}: {text} Default {default!r}.", indent="    "))
    return "\n".join(lines)


def _wrap(text: str, indent: str = "") -> str:
    # breaks only at spaces, so a number stays whole
    return textwrap.fill(
        text,
        width=92,
        initial_indent=indent,
        subsequent_indent=indent * 2,
        break_long_words=False,
        break_on_hyphens=False,
    )
