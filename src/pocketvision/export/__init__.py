"""Export a trained run to Core ML, LiteRT (TFLite), ONNX and ExecuTorch, and prove each file
computes what the PyTorch model computes.

>>> from pocketvision.export import export_run
>>> results = export_run("runs/demo", formats="onnx,tflite", quantize="none,int8")
>>> [(r.format, r.precision, r.status, r.max_abs_diff) for r in results]

Heavy converters are imported inside the functions that use them, so importing this package
is cheap and a missing converter fails only its own format.
"""

from __future__ import annotations

from pocketvision.export.api import REPORT, ExportReport, export_run, format_table
from pocketvision.export.common import ExportResult
from pocketvision.export.formats import FORMATS, QUANTIZE

__all__ = [
    "FORMATS",
    "QUANTIZE",
    "REPORT",
    "ExportReport",
    "ExportResult",
    "export_run",
    "format_table",
]
