"""``pocketvision export RUN``: every mobile format, verified, with a printed report."""

from __future__ import annotations

import argparse

from pocketvision.export.formats import FORMATS, QUANTIZE


def _export(args: argparse.Namespace) -> int:
    from pocketvision.export import export_run, format_table

    report = export_run(
        args.run,
        formats=args.format,
        quantize=args.quantize,
        calibration_images=args.calibration_images,
        out=args.out,
        verify_images=args.verify_images,
        split=args.split,
        threads=args.threads,
        codegen=not args.no_code,
        isolate=args.isolate,
    )
    print(format_table(report))
    print(
        f"checked on {report.verify_images} {report.split} images; "
        f"report: {report.folder / 'export_report.json'}"
    )
    return 1 if report.failed else 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this area's subcommands to the ``pocketvision`` parser."""
    parser = subparsers.add_parser(
        "export",
        help="export a run to Core ML, LiteRT, ONNX and ExecuTorch, verified against PyTorch",
        description=(
            "Write every format and precision, check each file against PyTorch on held-out "
            "images, print a table and write export_report.json, Swift and Kotlin code. "
            "Exit code 1 when any file failed."
        ),
    )
    parser.add_argument("run", help="run directory (runs/NAME)")
    parser.add_argument(
        "--format",
        help=f"comma list of {','.join(FORMATS)} (default: all installed)",
    )
    parser.add_argument(
        "--quantize", help=f"comma list of {','.join(QUANTIZE)} (default: all of them)"
    )
    parser.add_argument(
        "--calibration-images",
        type=int,
        default=200,
        help="training images that calibrate int8 activation ranges (default 200)",
    )
    parser.add_argument("--out", help="output folder (default RUN/export)")
    parser.add_argument(
        "--verify-images",
        type=int,
        default=500,
        help="held-out images every file is checked on (default 500)",
    )
    parser.add_argument(
        "--split",
        choices=("val", "test"),
        default="val",
        help="held-out split to check and score on (default val)",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads per runtime (default 1)"
    )
    parser.add_argument("--no-code", action="store_true", help="skip the Swift and Kotlin code")
    parser.add_argument(
        "--isolate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=(
            "run each converter in its own process, so a native crash fails that format only "
            "(default: when more than one format; --no-isolate is faster, one process)"
        ),
    )
    parser.set_defaults(func=_export)
