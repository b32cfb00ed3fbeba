"""The console is the user's: other libraries' warnings, logs and progress bars are captured
where pocketvision calls those libraries, and shown only with ``--verbose`` (or ``--debug``).

>>> from pocketvision.console import captured
>>> with captured() as noise:
...     import coremltools  # prints its version warnings and "Failed to load ..." lines
>>> noise.lines()  # what it printed, kept instead of shown

:func:`captured` takes, for the duration of the block only: Python warnings
(``warnings.catch_warnings(record=True)``, the filters as they are), everything written to
``sys.stdout`` / ``sys.stderr`` (tqdm bars, logging handlers, ``print``), and what C and C++
code writes to file descriptors 1 and 2 (glog's ``W1205 ...`` lines, XNNPACK's
``[threadpool.cpp:66]``). Nothing is silenced globally: outside a block every warning and log
reaches the console as Python configures it. pocketvision's own lines are never printed
inside a block.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

_verbose = False


def set_verbose(on: bool) -> None:
    """Replay what :func:`captured` blocks capture (the CLI's ``--verbose`` and ``--debug``)."""
    global _verbose
    _verbose = on


def is_verbose() -> bool:
    return _verbose or os.environ.get("POCKETVISION_VERBOSE", "") not in ("", "0")


@dataclass
class Captured:
    """What other libraries printed inside one :func:`captured` block."""

    text: str = ""
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Every captured line: the printed text, then each warning's formatted lines."""
        out = [line for line in self.text.splitlines() if line.strip()]
        for warning in self.warnings:
            out += [line for line in warning.splitlines() if line.strip()]
        return out


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers (printf from a C library), so they land before fds move."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _file_descriptors_to(target: IO[bytes]) -> Iterator[None]:
    """Point fds 1 and 2 at ``target`` (what C code writes), and back afterwards."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    _flush_c_stdio()
    saved: list[tuple[int, int]] = []
    try:
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
            except OSError:  # fd closed (a daemon, some embedders): nothing to redirect
                continue
            os.dup2(target.fileno(), fd)
        yield
    finally:
        _flush_c_stdio()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


@contextlib.contextmanager
def captured() -> Iterator[Captured]:
    """Capture other libraries' warnings and output for the block; see the module docstring.

    With ``--verbose`` the captured lines are written to stderr when the block ends (also
    when it raises), so nothing is lost, only moved out of the user's way.
    """
    record = Captured()
    text = io.StringIO()
    with tempfile.TemporaryFile() as raw:
        try:
            with (
                warnings.catch_warnings(record=True) as caught,
                _file_descriptors_to(raw),
                contextlib.redirect_stdout(text),
                contextlib.redirect_stderr(text),
            ):
                yield record
        finally:
            raw.seek(0)
            low_level = raw.read().decode(errors="replace")
            record.text = low_level + text.getvalue()
            record.warnings = [
                warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
                for w in caught
            ]
            if is_verbose():
                _replay(record)


def _replay(record: Captured) -> None:
    if record.text:
        sys.stderr.write(record.text if record.text.endswith("\n") else record.text + "\n")
    for warning in record.warnings:
        sys.stderr.write(warning)
    sys.stderr.flush()
