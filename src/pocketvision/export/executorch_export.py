"""ExecuTorch: torch.export at batch 1, lowered to the XNNPACK delegate, saved as .pte and
checked with the ExecuTorch Python runtime. Every op the delegate did not take is reported
(``notes``), so "whole graph delegated" is a checked fact, not a hope.

int8 is ExecuTorch's own PT2E flow for XNNPACK: the XNNPACK quantizer (int8 weights per output
channel, int8 activations per tensor) on the same batch-1 graph, calibrated on the export's
calibration images, converted, then lowered like fp32.

fp16 is the model cast to float16 between a float32 input and output (:class:`Float16`), so
the app feeds it the fp32 program's buffer; XNNPACK converts no dtypes, so the two casts run
in ExecuTorch's portable kernels and the rest in XNNPACK's fp16 kernels. Those need no native
fp16 arithmetic: on x86 (F16C, FMA3, AVX2) they widen float16 values to float32 for the
arithmetic and round the results back, so the file is checked here like the others. It is
barely smaller than fp32 (1.00x for the demo's MobileNet v1 0.5): executorch 1.5.1's XNNPACK
serializer writes convolution weights as float32 (linear layers' as float16) and XNNPACK
converts them when it loads the program. On the 10,000 Fashion-MNIST test images that model
(trained briefly) agreed with PyTorch on 99.86 % top-1, at the same accuracy (README, "Export").
"""

from __future__ import annotations

import copy
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
FILES = {"fp32": FILE, "fp16": "model_xnnpack_fp16.pte", "int8": "model_xnnpack_int8.pte"}
# Graph nodes that are plumbing, not compute left outside the delegate.
_PLUMBING = {"executorch_call_delegate", "getitem", "alloc"}
# What Float16's two casts lower to: outside XNNPACK, which converts no dtypes.
_CAST = "_to_dim_order_copy.out x2"


class Float16(nn.Module):
    """A copy of ``model`` in float16, taking and returning float32 (N, C, H, W) -> (N, K)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


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


def to_pte(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    *,
    precision: str = "fp32",
    calibration: np.ndarray | None = None,
) -> Path:
    """Convert a model to an XNNPACK .pte at ``example``'s shape, in its mobile form.

    Args:
        model: Any eval-mode module taking (N, C, H, W) float32.
        example: The input batch; the program takes exactly this shape.
        path: The file to write.
        precision: "fp32", "fp16" (float16 compute, float32 input and output) or "int8"
            (PT2E for XNNPACK; needs ``calibration``).
        calibration: Normalised (M, C, H, W) float32 inputs that set int8 activation ranges.

    Returns:
        ``path``. :func:`lower` also says which ops stayed outside the delegate.
    """
    if precision not in FILES:
        raise ValueError(f"to_pte has no {precision} path; choose from {', '.join(FILES)}")
    if precision == "int8" and calibration is None:
        raise ValueError("int8 needs calibration inputs")
    path = Path(path)
    mobile = mobile_form(model, tuple(example.shape[1:]))
    if precision == "fp16":
        mobile = Float16(mobile)
    elif precision == "int8":
        assert calibration is not None
        mobile = quantize_int8(mobile, example, np.asarray(calibration, np.float32))
    buffer, _ = lower(mobile, example)
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
    """fp32, fp16 and int8 XNNPACK programs, as asked."""
    wanted = [p for p in FILES if p in precisions]
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
        if precision == "fp16":
            model = Float16(ctx.model)
        elif precision == "int8":
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
        entry.notes.append(_delegation(left_out, precision))
    except Exception as err:
        entry.error = describe_failure(err, ctx.model, ctx.example())
    entry.seconds = round(time.perf_counter() - started, 3)
    return entry


def _delegation(left_out: list[str], precision: str) -> str:
    """The note on what XNNPACK took; fp16's input and output casts cannot go in."""
    if precision == "fp16" and left_out == [_CAST]:
        return "whole graph delegated to XNNPACK but the float32 <-> float16 casts at its ends"
    if left_out:
        return "not delegated to XNNPACK: " + ", ".join(left_out)
    return "whole graph delegated to XNNPACK"
