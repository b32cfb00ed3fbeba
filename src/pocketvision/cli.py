"""The ``pocketvision`` command line: parses arguments and calls the library.

Each area adds its own subcommands (``add_commands``); every handler is a thin wrapper over a
library function users can also call from Python. User errors (:class:`PocketvisionError`)
print one line and exit with code 2; ``--debug`` anywhere on the line shows the traceback.
``--verbose`` anywhere on the line shows what other libraries print inside pocketvision's
calls (captured by :mod:`pocketvision.console` otherwise); ``--debug`` implies it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from pocketvision import __version__
from pocketvision.console import set_verbose
from pocketvision.data import commands as data_commands
from pocketvision.errors import PocketvisionError
from pocketvision.evaluate import commands as evaluate_commands
from pocketvision.export import commands as export_commands
from pocketvision.profile import commands as profile_commands
from pocketvision.scratch import commands as scratch_commands
from pocketvision.search import commands as search_commands
from pocketvision.train import commands as train_commands
from pocketvision.web import commands as web_commands
from pocketvision.weights import commands as weights_commands

COMMAND_GROUPS = (
    scratch_commands,
    data_commands,
    train_commands,
    evaluate_commands,
    export_commands,
    profile_commands,
    search_commands,
    web_commands,
    weights_commands,
)


def _models(args: argparse.Namespace) -> int:
    from pocketvision.zoo import markdown_table, zoo_rows

    rows = zoo_rows(args.pattern)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(markdown_table(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pocketvision",
        description="Mobile image recognition with CNNs: learn, train, measure, ship.",
    )
    parser.add_argument("--version", action="version", version=f"pocketvision {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show other libraries' warnings, logs and progress bars (anywhere on the line)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = sub.add_parser("models", help="table of every registered model")
    models.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'mobilenet*'")
    models.add_argument("--json", action="store_true", help="print a JSON list instead")
    models.set_defaults(func=_models)

    for group in COMMAND_GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pocketvision`` console script and ``python -m pocketvision``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    set_verbose(debug or "--verbose" in argv)
    argv = [a for a in argv if a not in ("--debug", "--verbose")]
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PocketvisionError as err:
        if debug:
            raise
        code = getattr(err, "exit_code", 2)  # 128 + signal for an interrupted training run
        print(f"pocketvision: {'' if code > 128 else 'error: '}{err}", file=sys.stderr)
        return int(code)
    except KeyboardInterrupt:
        print("pocketvision: interrupted", file=sys.stderr)
        return 130
