"""ExecuTorch: torch.export at batch 1, lowered to the XNNPACK delegate, saved as .pte and
checked with the ExecuTorch Python runtime. Every op the delegate did not take is reported
(``notes``), so "whole graph delegated" is a checked fact, not a hope.

int8 is ExecuTorch's own PT2E flow for XNNPACK: the XNNPACK quantizer (int8 weights per output
channel, int8 activations per tensor) on the same batch-1 graph, calibrated on the export's
calibration images, converted, then lowered like fp32. fp16 is not written: XNNPACK runs fp16
only on CPUs with native fp16 arithmetic (ARMv8.2), so such a file could not be checked here.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketvision.export.common import (
    ExportContext,
    ExportResult,
    describe_failure,
    file_size,
    mobile_form,
    require,
    score,
)
from pocketvision.rundir import read_qat_state
from pocketvision.timing import median_latency_ms

FILE = "model_xnnpack.pte"
FILES = {"fp32": FILE, "int8": "model_xnnpack_int8.pte"}
# Graph nodes that are plumbing, not compute left outside the delegate.
_PLUMBING = {"executorch_call_delegate", "getitem", "alloc"}


def lower(model: nn.Module, example: torch.Tensor) -> tuple[bytes, list[str]]:
    """Export ``model`` (as given) at ``example``'s shape, batch included (programs have static
    shapes), lower to XNNPACK, and list the ops (with counts) left outside the delegate."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with torch.no_grad():
        program = torch.export.export(model, (example,))
    executorch = to_edge_transform_and_lower(
        program, partitioner=[XnnpackPartitioner()]
    ).to_executorch()
    left_out: Counter[str] = Counter()
    for node in executorch.exported_program().graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if name.split(".")[0] not in _PLUMBING:
            left_out[name] += 1
    return bytes(executorch.buffer), [f"{op} x{n}" for op, n in sorted(left_out.items())]


def quantize_int8(model: nn.Module, example: torch.Tensor, calibration: np.ndarray) -> nn.Module:
    """``model`` (as given) quantised for XNNPACK by PT2E, its activation ranges set by running
    ``calibration`` (normalised float32 images, N x C x H x W) through it one at a time (the
    program's batch is 1)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    config = get_symmetric_quantization_config(is_per_channel=True)
    with torch.no_grad():
        graph = torch.export.export(model, (example,)).module()
        prepared = prepare_pt2e(graph, XNNPACKQuantizer().set_global(config))
        for image in calibration:
            prepared(torch.from_numpy(np.ascontiguousarray(image[None])))
        return convert_pt2e(prepared)


def to_pte(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Convert a model to an XNNPACK .pte at ``example``'s shape, in its mobile form.

    Args:
        model: Any eval-mode module taking (N, C, H, W) float32.
        example: The input batch; the program takes exactly this shape.
        path: The file to write.

    Returns:
        ``path``. :func:`lower` also says which ops stayed outside the delegate.
    """
    path = Path(path)
    buffer, _ = lower(mobile_form(model, tuple(example.shape[1:])), example)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer)
    return path


def load_method(path: str | Path) -> Any:
    """The program's ``forward`` in the ExecuTorch Python runtime."""
    from executorch.runtime import Runtime

    return Runtime.get().load_program(str(path)).load_method("forward")


def check(ctx: ExportContext, path: Path) -> dict[str, Any]:
    """Run every verification image through the ExecuTorch runtime (batch 1)."""
    method = load_method(path)
    inputs = torch.from_numpy(ctx.verify.inputs)

    def run(image: torch.Tensor) -> np.ndarray:
        return method.execute([image[None].contiguous()])[0].numpy()[0]

    outputs = np.stack([run(image) for image in inputs])
    result = score(ctx.verify, outputs)
    result["latency_ms"] = median_latency_ms(lambda: run(inputs[0]), ctx.latency_runs)
    return result


def export(ctx: ExportContext, precisions: Sequence[str]) -> list[ExportResult]:
    """fp32 and int8 XNNPACK programs; no fp16 file (see the module docstring)."""
    wanted = [p for p in ("fp32", "int8") if p in precisions]
    folder = ctx.out / "executorch"
    folder.mkdir(parents=True, exist_ok=True)
    return [_export_one(ctx, folder / FILES[precision], precision) for precision in wanted]


def _export_one(ctx: ExportContext, path: Path, precision: str) -> ExportResult:
    entry = ExportResult(
        "executorch", precision, path=str(path.relative_to(ctx.out)), variant="xnnpack"
    )
    started = time.perf_counter()
    try:
        require("executorch")
        model = ctx.model
        if precision == "int8":
            model = quantize_int8(ctx.model, ctx.example(1), ctx.verify.calibration)
            if read_qat_state(ctx.run.path) is not None:
                entry.notes.append(
                    "calibrated on the QAT run's weights: the QAT graph is LiteRT's (NHWC)"
                )
        buffer, left_out = lower(model, ctx.example(1))
        path.write_bytes(buffer)
        entry.size_bytes = file_size(path)
        for key, value in check(ctx, path).items():
            setattr(entry, key, value)
        entry.status = "ok"
        if left_out:
            entry.notes.append("not delegated to XNNPACK: " + ", ".join(left_out))
        else:
            entry.notes.append("whole graph delegated to XNNPACK")
    except Exception as err:
        entry.error = describe_failure(err, ctx.model, ctx.example())
    entry.seconds = round(time.perf_counter() - started, 3)
    return entry
