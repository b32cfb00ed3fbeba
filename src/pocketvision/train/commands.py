"""``pocketvision train`` and ``pocketvision demo``.

The train flags are generated from :class:`TrainConfig`'s fields, one flag per field, with the
field's comment as its help, so the CLI and the Python API cannot drift apart.
"""

from __future__ import annotations

import argparse
import inspect
import re
import types
import typing
from dataclasses import fields

from pocketvision.train.config import (
    AUGMENTS,
    DEFAULT_WEIGHTS,
    DEVICES,
    OPTIMIZERS,
    SAMPLERS,
    SCHEDULES,
    TrainConfig,
)

CHOICES = {
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "augment": AUGMENTS,
    "device": DEVICES,
    "sampler": SAMPLERS,
}
# flags whose value may be left out: the value they then take
OPTIONAL_VALUE = {"pretrained": DEFAULT_WEIGHTS}


def _field_comments() -> dict[str, str]:
    """The ``# comment`` above each TrainConfig field, used as its --help text."""
    source = inspect.getsource(TrainConfig)
    found = re.findall(r"^\s+# (.+)\n\s+(\w+): ", source, flags=re.MULTILINE)
    return {name: text.replace("%", "%%") for text, name in found}


def _base_type(annotation: object) -> type:
    """int for ``int | None``, and so on."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return args[0]
    return annotation  # type: ignore[return-value]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag-name`` per TrainConfig field."""
    helps = _field_comments()
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = _base_type(hints[f.name])
        help_text = helps.get(f.name, "")
        if kind is bool:
            if f.default is False:
                parser.add_argument(flag, action="store_true", default=None, help=help_text)
            else:
                parser.add_argument(
                    flag, action=argparse.BooleanOptionalAction, default=None, help=help_text
                )
        elif f.name in OPTIONAL_VALUE:
            parser.add_argument(
                flag,
                nargs="?",
                const=OPTIONAL_VALUE[f.name],
                default=None,
                metavar="TAG|FILE",
                help=f"{help_text} (default: {f.default})",
            )
        else:
            parser.add_argument(
                flag,
                type=kind,
                default=None,
                choices=CHOICES.get(f.name),
                metavar=None if f.name in CHOICES else f.name.upper(),
                help=f"{help_text} (default: {f.default})",
            )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A TrainConfig from parsed flags; flags not given keep the dataclass defaults."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in given.items() if v is not None})


def _train(args: argparse.Namespace) -> int:
    from pocketvision.train.loop import train

    train(config_from_args(args))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pocketvision.demo import run_demo

    run_demo(out=args.out, epochs=args.epochs, quiet=args.quiet)
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``train`` and ``demo`` to the ``pocketvision`` parser."""
    train = subparsers.add_parser(
        "train",
        help="train a model on a folder, a CSV manifest, IDX files, fashion-mnist or digits",
        description="Train a registered model and write a run directory. "
        "Distributed: torchrun --nproc_per_node=N -m pocketvision train ...",
    )
    add_train_arguments(train)
    train.set_defaults(func=_train)

    demo = subparsers.add_parser(
        "demo",
        help="train the default mobile model on Fashion-MNIST (digits if missing) and report",
    )
    demo.add_argument("--out", default=None, help="run directory (default: runs/demo-DATA)")
    demo.add_argument("--epochs", type=int, default=None, help="override the demo's epochs")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)
