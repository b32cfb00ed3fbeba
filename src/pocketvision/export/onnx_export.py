"""ONNX: torch.onnx's dynamo exporter (opset 18, dynamic batch, one self-contained file with
labels and preprocessing in metadata_props), checked with onnxruntime; int8 by onnxruntime
static quantization (QDQ, per-channel weights) calibrated on training images.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pocketvision.export.common import (
    ExportContext,
    ExportResult,
    describe_failure,
    file_size,
    require,
    score,
)
from pocketvision.timing import median_latency_ms

OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


def metadata(ctx: ExportContext) -> dict[str, str]:
    """Key/value strings stored in the ONNX file, so an app needs nothing else to feed it."""
    prep = ctx.prep
    return {
        "labels": json.dumps(ctx.labels),
        "mean": json.dumps(list(prep.mean)),
        "std": json.dumps(list(prep.std)),
        "input_size": json.dumps(list(prep.input_size)),
        "color_mode": prep.color_mode,
        "resize": prep.resize,
        "layout": "NCHW",
        "pixel_scale": "1/255",
        "model": ctx.run.spec.name,
        "producer": "pocketvision",
    }


def export_fp32(ctx: ExportContext, path: Path) -> None:
    """Write the fp32 ONNX file with a dynamic batch dimension and metadata."""
    import onnx

    batch = torch.export.Dim("batch", min=1, max=1024)
    with torch.no_grad():
        program = torch.onnx.export(
            ctx.model,
            (ctx.example(2),),
            dynamo=True,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)
    model = onnx.load(str(path))
    for node in model.graph.node:
        # the exporter's per-node provenance (module paths, stack traces) is ~0.5 kB a node:
        # a sixth of an int8 MobileNet file, and of no use to a runtime
        del node.metadata_props[:]
        node.doc_string = ""
    del model.metadata_props[:]
    for key, value in metadata(ctx).items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = f"{ctx.run.spec.name} exported by pocketvision"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


class _Calibration:
    """onnxruntime CalibrationDataReader over normalised training images, one at a time."""

    def __init__(self, images: np.ndarray) -> None:
        self._iter: Iterator[np.ndarray] = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._iter, None)
        return None if image is None else {INPUT_NAME: image[None]}


def export_int8(ctx: ExportContext, fp32: Path, path: Path) -> None:
    """Static int8 (QDQ, per-channel weights, uint8 activations) calibrated on training images."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    pre = path.with_name(path.stem + "_pre.onnx")
    try:
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(path),
            _Calibration(ctx.verify.calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    finally:
        pre.unlink(missing_ok=True)
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata(ctx).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def check(ctx: ExportContext, path: Path) -> dict[str, Any]:
    """Run the file in onnxruntime on every verification image and time one image."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = ctx.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = ctx.verify.inputs
    outputs = np.concatenate(
        [
            session.run([OUTPUT_NAME], {INPUT_NAME: inputs[i : i + 64]})[0]
            for i in range(0, len(inputs), 64)
        ]
    )
    one = inputs[:1]
    result = score(ctx.verify, outputs)
    result["latency_ms"] = median_latency_ms(
        lambda: session.run([OUTPUT_NAME], {INPUT_NAME: one}), ctx.latency_runs
    )
    return result


def export(ctx: ExportContext, precisions: Sequence[str]) -> list[ExportResult]:
    """Export fp32 (always, as the base) and int8 when asked; fp16 has no ONNX path here."""
    results: list[ExportResult] = []
    folder = ctx.out / "onnx"
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / "model.onnx"
    try:
        require("onnx")
        export_fp32(ctx, fp32)
    except Exception as err:
        message = describe_failure(err, ctx.model, ctx.example())
        return [ExportResult("onnx", p, error=message) for p in precisions if p != "fp16"]
    jobs = [("fp32", fp32)] if "fp32" in precisions else []
    if "int8" in precisions:
        jobs.append(("int8", folder / "model_int8.onnx"))
    for precision, path in jobs:
        entry = ExportResult("onnx", precision, path=str(path.relative_to(ctx.out)))
        try:
            if precision == "int8":
                export_int8(ctx, fp32, path)
            entry.size_bytes = file_size(path)
            for key, value in check(ctx, path).items():
                setattr(entry, key, value)
            entry.status = "ok"
        except Exception as err:
            entry.error = describe_failure(err, ctx.model, ctx.example())
        results.append(entry)
    if "fp32" not in precisions:
        fp32.unlink(missing_ok=True)
    return results
