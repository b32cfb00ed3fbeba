"""CLI commands of the fundamentals area: ``pocketvision lesson`` and ``pocketvision filter``.

Only argparse at import time: the handlers import NumPy code (never torch) when they run.
"""

from __future__ import annotations

import argparse

from pocketvision.errors import PocketvisionError

LESSON_NAMES = ("linear-regression", "perceptron", "mlp", "convolution", "pooling", "lenet")
KERNEL_NAMES = ("gaussian-blur", "box-blur", "sobel-x", "sobel-y", "laplacian", "sharpen", "emboss")


def _lesson(args: argparse.Namespace) -> int:
    from pocketvision.scratch.lessons import run_lesson

    out = args.out or f"{args.name}.png"
    result = run_lesson(args.name, out)
    print(f"figure written to {result.figure}")
    return 0


def _filter(args: argparse.Namespace) -> int:
    from pocketvision.scratch.filter import explain_figure, filter_image

    try:
        result = filter_image(
            args.image,
            args.kernel,
            stride=args.stride,
            pool=args.pool,
            gray=args.gray,
            out=args.out,
        )
    except ValueError as err:  # a bad kernel, pool or stride: the user's input, one line
        raise PocketvisionError(str(err)) from None
    h, w = result.output.shape[:2]
    print(f"{args.image} -> {args.out} ({w}x{h}, kernel {result.kernel.meaning})")
    if args.explain:
        print(f"explanation written to {explain_figure(result, args.stride, args.explain)}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``lesson`` and ``filter`` to the ``pocketvision`` parser."""
    lesson = subparsers.add_parser(
        "lesson",
        help="run a NumPy lesson: from a line fit to a CNN (prints each step, writes a figure)",
        description="Run one lesson of the fundamentals, written in plain NumPy.",
    )
    lesson.add_argument("name", choices=LESSON_NAMES, help="which lesson")
    lesson.add_argument("--out", help="PNG figure to write (default: NAME.png)")
    lesson.set_defaults(func=_lesson)

    filt = subparsers.add_parser(
        "filter",
        help="apply a classic 3x3 kernel (and pooling) to any image",
        description=(
            "Apply a kernel to an image, channel by channel. Edge kernels (weights summing to 0) "
            "are shown as magnitudes, so an edge is bright whichever way it faces."
        ),
    )
    filt.add_argument("image", help="input image (any format PIL reads)")
    filt.add_argument(
        "--kernel",
        required=True,
        help=f"one of {', '.join(KERNEL_NAMES)}, or 9 numbers row by row, e.g. '1,0,-1,2,0,-2,1,0,-1'",
    )
    filt.add_argument("--stride", type=int, default=1, help="step between windows (default 1)")
    filt.add_argument("--pool", help="pool after the kernel: max2, avg2, max3, ...")
    filt.add_argument(
        "--gray", action="store_true", help="convert a color image to grayscale first"
    )
    filt.add_argument("-o", "--out", required=True, help="output image, e.g. out.png")
    filt.add_argument(
        "--explain", metavar="FIG.png", help="also draw input, kernel, stride grid and output"
    )
    filt.set_defaults(func=_filter)
