"""``pocketvision weights [PATTERN] [--json]``: the table of known checkpoints."""

from __future__ import annotations

import argparse
import json

from pocketvision.weights.table import checkpoints, markdown_table


def _weights(args: argparse.Namespace) -> int:
    rows = checkpoints(args.pattern)
    if args.json:
        print(json.dumps([c.row() for c in rows], indent=2))
    else:
        print(markdown_table(rows))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    weights = sub.add_parser("weights", help="table of published pretrained checkpoints")
    weights.add_argument("pattern", nargs="?", help="shell-style model filter, e.g. 'resnet*'")
    weights.add_argument("--json", action="store_true", help="print a JSON list instead")
    weights.set_defaults(func=_weights)
