"""Fault injection for the reliability tests: a real crash at a named place, never a mock.

``POCKETVISION_FAULT=export:onnx`` makes the ONNX converter's process die of SIGSEGV (a read
of address 0, as a bug in a native converter library would), so a test can show that one
format's crash costs that format only. Several sites are separated by commas. Unset (the
normal case), :func:`inject` does nothing.
"""

from __future__ import annotations

import ctypes
import os

ENV = "POCKETVISION_FAULT"


def inject(site: str) -> None:
    """Crash this process with SIGSEGV when ``$POCKETVISION_FAULT`` names ``site``."""
    if site in os.environ.get(ENV, "").split(","):
        ctypes.string_at(0)  # reads address 0: SIGSEGV
