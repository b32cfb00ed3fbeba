"""Each converter in its own process: a native crash in one format costs that format only.

Converters are large native libraries (torch.export, onnxruntime, coremltools, LiteRT,
ExecuTorch); a segfault or abort in one of them would end the whole export, the other
formats' files and the report with it. :func:`run_isolated` runs one format's exporter in a
child interpreter (``python -m pocketvision.export.isolate``) that reads the export context
(model, verification set) pickled on its stdin and sends its results back through a pipe of
its own. A child that dies gives that format's rows, status "failed", with the reason ("killed
by SIGSEGV", or the last line it printed).

A plain subprocess rather than multiprocessing's spawn: spawn re-imports the caller's
``__main__``, so a user's script without an ``if __name__ == "__main__"`` guard would start
its export again in every child, and a child that dies while the parent still writes the
context leaves the parent blocked on a full pipe for ever. Here the context is written by a
thread, the child's output goes to a file (replayed with ``--verbose``), and nothing of the
caller's script runs in the child.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import IO, Any

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


def _child(job: IO[bytes], reply_fd: int) -> None:
    """The child's side: read (format, context, precisions, verbose), export, reply."""
    fmt, ctx, precisions, verbose = pickle.load(job)
    set_verbose(verbose)
    torch.set_num_threads(ctx.threads)
    try:
        reply: tuple[str, Any] = ("ok", run_format(fmt, ctx, precisions))
    except PocketvisionError as err:
        reply = ("error", str(err))
    except Exception as err:  # a converter bug: the parent reports it like an in-process one
        reply = ("bug", f"{type(err).__name__}: {str(err).strip()[:300]}")
    with os.fdopen(reply_fd, "wb") as out:
        pickle.dump(reply, out)


def _reason(returncode: int, log: str) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    last = [line.strip() for line in log.splitlines() if line.strip()]
    said = f": {last[-1][:200]}" if last else ""
    return f"exited with code {returncode} before reporting{said}"


def crashed_rows(fmt: str, precisions: Sequence[str], reason: str) -> list[ExportResult]:
    """The rows a format would have written, each failed with ``reason``."""
    wanted = [p for p in BY_NAME[fmt].precisions if p.split("_")[0] in precisions]
    return [
        ExportResult(format=fmt, precision=p, status="failed", error=f"converter {reason}")
        for p in wanted or precisions[:1]
    ]


def _write_job(stream: IO[bytes], payload: bytes) -> None:
    try:
        stream.write(payload)
        stream.close()
    except (BrokenPipeError, OSError):  # the child died first: its exit status says why
        pass


def run_isolated(fmt: str, ctx: ExportContext, precisions: Sequence[str]) -> list[ExportResult]:
    """:func:`run_format` in a child interpreter; a crash becomes failed rows, not our crash.

    Raises:
        PocketvisionError: What the exporter raised as one (a missing package, say).
        RuntimeError: Any other exception the exporter raised.
    """
    payload = pickle.dumps((fmt, ctx, list(precisions), is_verbose()), pickle.HIGHEST_PROTOCOL)
    receive, send = os.pipe()
    with tempfile.TemporaryFile() as log:
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "pocketvision.export.isolate", str(send)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                pass_fds=(send,),
            )
        finally:
            os.close(send)  # the child's copy is the only writer: EOF when it ends
        assert child.stdin is not None
        writer = threading.Thread(target=_write_job, args=(child.stdin, payload), daemon=True)
        writer.start()
        with os.fdopen(receive, "rb") as reply_pipe:
            data = reply_pipe.read()
        returncode = child.wait()
        writer.join()
        log.seek(0)
        text = log.read().decode(errors="replace")
    if is_verbose() and text.strip():
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
    if not data:
        return crashed_rows(fmt, precisions, _reason(returncode, text))
    kind, value = pickle.loads(data)  # our own child's reply, never a file from outside
    if kind == "ok":
        return list(value)
    if kind == "error":
        raise PocketvisionError(value)
    raise RuntimeError(f"{fmt} export: {value}")


if __name__ == "__main__":
    _child(sys.stdin.buffer, int(sys.argv[1]))
