"""Each converter in its own process: a native crash in one format costs that format only.

Converters are large native libraries (torch.export, onnxruntime, coremltools, LiteRT,
ExecuTorch); a segfault or abort in one of them would end the whole export, the other
formats' files and the report with it. :func:`run_isolated` runs one format's exporter in a
spawned child that gets the export context (model, verification set) by pickling and sends
its results back through a pipe. A child that dies gives that format's rows, status "failed",
with the reason ("killed by SIGSEGV").
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import torch

from pocketvision.console import captured, is_verbose, set_verbose
from pocketvision.errors import PocketvisionError
from pocketvision.export.common import ExportContext, ExportResult
from pocketvision.export.formats import BY_NAME
from pocketvision.faults import inject

Exporter = Callable[[ExportContext, Sequence[str]], list[ExportResult]]


def exporters() -> dict[str, Exporter]:
    """``--format`` name -> its run-level export function."""
    from pocketvision.export import coreml_export, executorch_export, onnx_export, tflite_export

    return {
        "onnx": onnx_export.export,
        "coreml": coreml_export.export,
        "tflite": tflite_export.export,
        "executorch": executorch_export.export,
    }


def run_format(fmt: str, ctx: ExportContext, precisions: Sequence[str]) -> list[ExportResult]:
    """One format's files in this process, the converter's own output captured."""
    inject(f"export:{fmt}")
    with captured():
        return exporters()[fmt](ctx, precisions)


def _child(
    fmt: str, ctx: ExportContext, precisions: Sequence[str], verbose: bool, conn: Connection
) -> None:
    set_verbose(verbose)
    torch.set_num_threads(ctx.threads)
    try:
        reply: tuple[str, Any] = ("ok", run_format(fmt, ctx, precisions))
    except PocketvisionError as err:
        reply = ("error", str(err))
    except Exception as err:  # a converter bug: the parent reports it like an in-process one
        reply = ("bug", f"{type(err).__name__}: {str(err).strip()[:300]}")
    conn.send(reply)
    conn.close()


def _reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode} before reporting"


def crashed_rows(fmt: str, precisions: Sequence[str], reason: str) -> list[ExportResult]:
    """The rows a format would have written, each failed with ``reason``."""
    wanted = [p for p in BY_NAME[fmt].precisions if p.split("_")[0] in precisions]
    return [
        ExportResult(format=fmt, precision=p, status="failed", error=f"converter {reason}")
        for p in wanted or precisions[:1]
    ]


def run_isolated(fmt: str, ctx: ExportContext, precisions: Sequence[str]) -> list[ExportResult]:
    """:func:`run_format` in a spawned child; a crash becomes failed rows, not our crash.

    Raises:
        PocketvisionError: What the exporter raised as one (a missing package, say).
        RuntimeError: Any other exception the exporter raised.
    """
    spawn = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    receive, send = spawn.Pipe(duplex=False)
    child = spawn.Process(
        target=_child, args=(fmt, ctx, list(precisions), is_verbose(), send), daemon=True
    )
    child.start()
    send.close()  # our copy: recv() sees EOF when the child dies
    try:
        kind, value = receive.recv()
    except EOFError:
        kind, value = "crash", None
    finally:
        receive.close()
        child.join()
    if kind == "ok":
        return list(value)
    if kind == "error":
        raise PocketvisionError(value)
    if kind == "bug":
        raise RuntimeError(f"{fmt} export: {value}")
    return crashed_rows(fmt, precisions, _reason(child.exitcode))
