"""What every exporter shares: the report entry, the verification images, scoring against
PyTorch, the mobile form of a model, and one-line converter errors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketvision.errors import PocketvisionError
from pocketvision.export.agreement import agreement
from pocketvision.export.formats import BY_NAME
from pocketvision.mobile import mobile_form as mobile_form  # re-exported: exporters use it
from pocketvision.preprocess import Preprocessing
from pocketvision.rundir import LoadedRun


@dataclass
class ExportResult:
    """One row of ``export_report.json``: a file of one format and precision, and its check.

    Attributes:
        format: "onnx", "coreml", "tflite" or "executorch".
        precision: "fp32", "fp16", "int8" (weights and activations; weights only for Core ML)
            or "int8_dynamic" (int8 weights, activations quantized at run time).
        path: The exported file or package, relative to the export folder.
        size_bytes: Its size on disk (a package's files summed).
        max_abs_diff: Largest |output - PyTorch output| over the verification images, on
            logits (probabilities for Core ML, whose graph ends in softmax).
        top1_agreement: Share of images whose top-1 class equals PyTorch's, in [0, 1].
        val_accuracy: Top-1 accuracy of the exported file on the verification split.
        latency_ms: Median single-image latency in the format's own runtime.
        status: "ok", "failed", or "unverified" (Core ML off macOS: spec checked only).
        error: Why it failed, or what was not checked, on one line.
        variant: Container detail, e.g. "mlprogram" or "neuralnetwork" for Core ML.
        notes: Facts worth knowing (ops left out of a delegate, reference accuracy).
        seconds: Wall time to write and check this file (a base conversion that several
            files share counts in the first of them).
    """

    format: str
    precision: str
    path: str | None = None
    size_bytes: int | None = None
    max_abs_diff: float | None = None
    top1_agreement: float | None = None
    val_accuracy: float | None = None
    latency_ms: float | None = None
    status: str = "failed"
    error: str | None = None
    variant: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float | None = None


@dataclass
class VerifySet:
    """Images the exported files are checked on, and PyTorch's answers for them.

    Attributes:
        images: uint8 (N, C, H, W) at the model's input size (Core ML takes these).
        inputs: float32 (N, C, H, W), normalised exactly as in training.
        labels: int64 (N,) true classes, or None when the images carry no labels.
        reference: float32 (N, K) PyTorch logits of ``inputs``.
        calibration: float32 (M, C, H, W) normalised training images for int8 calibration.
        split: Where ``images`` came from ("val", "test", or "random" without data).
    """

    images: np.ndarray
    inputs: np.ndarray
    labels: np.ndarray | None
    reference: np.ndarray
    calibration: np.ndarray
    split: str


@dataclass
class ExportContext:
    """Everything an exporter needs: the run, the model in export form, data, output folder."""

    run: LoadedRun
    model: nn.Module  # mobile form of run.model (see mobile_form), eval mode
    verify: VerifySet
    out: Path
    threads: int = 1
    latency_runs: int = 30

    @property
    def prep(self) -> Preprocessing:
        return self.run.preprocessing

    @property
    def labels(self) -> list[str]:
        return self.run.labels

    def example(self, batch: int = 1) -> torch.Tensor:
        return torch.from_numpy(self.verify.inputs[:batch].copy())


def require(fmt: str) -> None:
    """Raise a one-line error naming the missing package and the extra that installs it."""
    BY_NAME[fmt].require()


def file_size(path: Path) -> int:
    """Bytes of a file, or of all files under a folder (a .mlpackage)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def score(verify: VerifySet, outputs: np.ndarray, *, probabilities: bool = False) -> dict[str, Any]:
    """The report's numbers for a runtime's outputs on the verification images.

    Args:
        verify: The images and PyTorch's logits.
        outputs: (N, K) from the exported file.
        probabilities: ``outputs`` are softmax probabilities (Core ML); compare with
            PyTorch's softmax instead of its logits.
    """
    found = agreement(verify.reference, outputs, labels=verify.labels, probabilities=probabilities)
    return {
        "max_abs_diff": found.max_abs_diff,
        "top1_agreement": found.top1_agreement,
        "val_accuracy": found.accuracy,
    }


def layer_of_op(
    model: nn.Module, example: torch.Tensor, ops: Sequence[str]
) -> tuple[str, str] | None:
    """The first of ``ops`` (aten op names) found in the model's graph, and the module path
    that calls it, e.g. ``("fft_rfft2", "features.3 (Spectral)")``."""
    try:
        program = torch.export.export(model, (example,))
    except Exception:
        return None
    for op in ops:
        short = op.split(".")[-1].split("::")[-1].lstrip("_")
        for node in program.graph.nodes:
            if node.op != "call_function":
                continue
            # str(target) is like "aten.fft_rfft2.default"
            parts = str(node.target).split(".")
            if short not in (p.lstrip("_") for p in parts):
                continue
            stack = node.meta.get("nn_module_stack") or {}
            if not stack:
                return op, "<model>"
            path, cls = list(stack.values())[-1]
            cls_name = cls.__name__ if isinstance(cls, type) else str(cls).rsplit(".", 1)[-1]
            return op, f"{path or '<model>'} ({cls_name})"
    return None


def _ops_in_traceback(err: BaseException) -> list[str]:
    """Op kinds of the graph nodes the converter was handling when it failed (innermost
    first): coremltools keeps the node in a local named ``node`` with a ``kind``."""
    found: list[str] = []
    tb = err.__traceback__
    while tb is not None:
        kind = getattr(tb.tb_frame.f_locals.get("node"), "kind", None)
        if isinstance(kind, str) and kind not in found:
            found.insert(0, kind)
        tb = tb.tb_next
    return found


def describe_failure(err: BaseException, model: nn.Module, example: torch.Tensor) -> str:
    """One line for a converter exception, naming the op and the layer where it can."""
    if isinstance(err, PocketvisionError):
        return str(err)
    text = " ".join(str(err).split()) or type(err).__name__
    message = f"{type(err).__name__}: {text[:300]}"
    # Converters name the op as aten.x / aten::x or in quotes ('x' not implemented).
    ops = re.findall(r"aten(?:\.|::)([A-Za-z_0-9]+)", text) + re.findall(r"'([A-Za-z_0-9]+)'", text)
    ops += re.findall(r"(?:fx node|kind|op) '?([A-Za-z_][A-Za-z_0-9]*)", text)  # coremltools
    ops += _ops_in_traceback(err)
    found = layer_of_op(model, example, ops) if ops else None
    if found:
        return f"op {found[0]} in layer {found[1]} cannot be converted: {message}"
    return message
