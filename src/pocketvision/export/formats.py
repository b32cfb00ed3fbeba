"""One table of the export formats (Ultralytics' ``export_formats()`` idea): the file each
writes, its precisions, the Python packages it needs and the runtime that checks it.

The table drives argument validation (:func:`~pocketvision.export.api.parse_list`), the
CLI's ``--format`` / ``--quantize`` help, the one-line error for a missing package, the
profiler's deploy runtimes (their ``format``) and the README's formats table
(``make models-table`` regenerates it; a test fails when it is stale).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from pocketvision.errors import PocketvisionError


@dataclass(frozen=True)
class Format:
    """One export format.

    Attributes:
        name: What ``--format`` calls it.
        title: Its name in prose.
        files: The files it writes under ``export/NAME/``.
        precisions: Precisions of the files (``int8_dynamic``: int8 weights, activations
            quantized at run time).
        modules: Python modules the conversion and the check import.
        packages: The pip distributions of ``modules``, in the same order.
        runtime: What runs the written file to check it against PyTorch.
        extra: The pocketvision extra that installs ``packages``.
    """

    name: str
    title: str
    files: str
    precisions: tuple[str, ...]
    modules: tuple[str, ...]
    packages: tuple[str, ...]
    runtime: str
    extra: str = "export"

    def missing(self) -> list[str]:
        """Modules of this format that are not importable here."""
        return [m for m in self.modules if not importable(m)]

    def require(self) -> None:
        """Raise a one-line error naming the missing modules and the extra that installs them."""
        missing = self.missing()
        if missing:
            raise PocketvisionError(
                f"{self.name} export needs {', '.join(missing)}: "
                f"pip install 'pocketvision[{self.extra}]'"
            )


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent missing, or the module set to None
        return False


TABLE: tuple[Format, ...] = (
    Format(
        "onnx",
        "ONNX",
        "model.onnx, model_fp16.onnx, model_int8.onnx",
        ("fp32", "fp16", "int8"),
        ("onnx", "onnxscript", "onnxruntime"),
        ("onnx", "onnxscript", "onnxruntime"),
        "onnxruntime (CPU), batches of 64",
    ),
    Format(
        "coreml",
        "Core ML",
        "Model.mlpackage, Model_fp16.mlpackage, Model_int8.mlpackage, Model.mlmodel",
        ("fp32", "fp16", "int8"),
        ("coremltools",),
        ("coremltools",),
        "spec check on Linux; Core ML predictions on macOS",
    ),
    Format(
        "tflite",
        "LiteRT (TFLite)",
        "model_fp32.tflite, model_fp16.tflite, model_int8_dynamic.tflite, model_int8.tflite",
        ("fp32", "fp16", "int8_dynamic", "int8"),
        ("litert_torch", "ai_edge_litert", "ai_edge_quantizer"),
        ("litert-torch", "ai-edge-litert", "ai-edge-quantizer"),
        "ai-edge-litert Interpreter, batch 1",
    ),
    Format(
        "executorch",
        "ExecuTorch",
        "model_xnnpack.pte, model_xnnpack_fp16.pte, model_xnnpack_int8.pte",
        ("fp32", "fp16", "int8"),
        ("executorch",),
        ("executorch",),
        "ExecuTorch runtime (XNNPACK delegate), batch 1",
    ),
)

BY_NAME: dict[str, Format] = {f.name: f for f in TABLE}
FORMATS: tuple[str, ...] = tuple(BY_NAME)
# What --quantize takes: "none" means fp32; "int8" gives every int8 variant a format has.
QUANTIZE = ("none", "fp16", "int8")


def quantize_choice(precision: str) -> str:
    """The ``--quantize`` value that asks for a file of ``precision``."""
    return "none" if precision == "fp32" else precision.split("_")[0]


def installed() -> list[str]:
    """Formats whose modules are all importable here."""
    return [f.name for f in TABLE if not f.missing()]


def markdown_table() -> str:
    """The README's formats table."""
    lines = [
        "| `--format` | format | files | precisions | needs (pip) | checked with |",
        "|---|---|---|---|---|---|",
    ]
    for f in TABLE:
        files = ", ".join(f"`{name.strip()}`" for name in f.files.split(","))
        lines.append(
            f"| `{f.name}` | {f.title} | {files} | {', '.join(f.precisions)} "
            f"| {', '.join(f.packages)} | {f.runtime} |"
        )
    return "\n".join(lines)
