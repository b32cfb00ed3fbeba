"""ONNX: torch.onnx's dynamo exporter (opset 18, dynamic batch, one self-contained file with
labels and preprocessing in metadata_props), checked with onnxruntime; fp16 by onnxruntime's
float16 converter from the fp32 file (float32 input and output, as the app feeds); int8 by
onnxruntime static quantization (QDQ, per-channel weights) calibrated on training images.

:func:`to_onnx` converts a bare model; :func:`export` is the run-level step of
:func:`~pocketvision.export.export_run`; :func:`session` is the one place an onnxruntime
session is made (export checks, the profiler, the web cache).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
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
from pocketvision.preprocess import Preprocessing
from pocketvision.timing import median_latency_ms

OPSET = 18
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
CPU = ("CPUExecutionProvider",)
# precision -> file name, in the order they are written
FILES = {"fp32": "model.onnx", "fp16": "model_fp16.onnx", "int8": "model_int8.onnx"}


def session(model: str | Path | bytes, *, threads: int = 1, providers: Sequence[str] = CPU) -> Any:
    """An onnxruntime InferenceSession on ``threads`` intra-op threads, run sequentially.

    Args:
        model: A file, or a serialized ModelProto.
        providers: Execution providers in order of preference (CPU last as the fallback).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=list(providers))


def run_session(sess: Any, inputs: np.ndarray, batch: int = 64) -> np.ndarray:
    """Logits of ``inputs`` (N, C, H, W) float32, ``batch`` images per call."""
    return np.concatenate(
        [
            sess.run([OUTPUT_NAME], {INPUT_NAME: inputs[i : i + batch]})[0]
            for i in range(0, len(inputs), batch)
        ]
    )


def onnx_metadata(name: str, labels: Sequence[str], prep: Preprocessing) -> dict[str, str]:
    """Key/value strings stored in the ONNX file, so an app needs nothing else to feed it."""
    return {
        "labels": json.dumps(list(labels)),
        "mean": json.dumps(list(prep.mean)),
        "std": json.dumps(list(prep.std)),
        "input_size": json.dumps(list(prep.input_size)),
        "color_mode": prep.color_mode,
        "resize": prep.resize,
        "layout": "NCHW",
        "pixel_scale": "1/255",
        "model": name,
        "producer": "pocketvision",
    }


def run_metadata(ctx: ExportContext) -> dict[str, str]:
    """:func:`onnx_metadata` of the run being exported."""
    return onnx_metadata(ctx.run.spec.name, ctx.labels, ctx.prep)


def _set_metadata(model: Any, metadata: Mapping[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)


def write_fp32(
    model: nn.Module, example: torch.Tensor, path: Path, metadata: Mapping[str, str]
) -> None:
    """Write ``model`` (as given) as fp32 ONNX with a dynamic batch dimension and metadata.

    ``example`` is a batch; one image is repeated to two (the exporter specialises a batch
    dimension of 1 instead of keeping it dynamic).
    """
    import onnx

    if len(example) < 2:
        example = torch.cat([example, example])
    batch = torch.export.Dim("batch", min=1, max=1024)
    with torch.no_grad():
        program = torch.onnx.export(
            model,
            (example,),
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
    proto = onnx.load(str(path))
    for node in proto.graph.node:
        # the exporter's per-node provenance (module paths, stack traces) is ~0.5 kB a node:
        # a sixth of an int8 MobileNet file, and of no use to a runtime
        del node.metadata_props[:]
        node.doc_string = ""
    _set_metadata(proto, metadata)
    proto.doc_string = f"{metadata.get('model', type(model).__name__)} exported by pocketvision"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


class _Calibration:
    """onnxruntime CalibrationDataReader over normalised training images, one at a time."""

    def __init__(self, images: np.ndarray) -> None:
        self._iter: Iterator[np.ndarray] = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._iter, None)
        return None if image is None else {INPUT_NAME: image[None]}


def convert_fp16(fp32: Path, path: Path, metadata: Mapping[str, str]) -> None:
    """fp16 weights and activations from the fp32 file, by onnxruntime's own converter (the
    one its transformer tools use). Input and output stay float32 (``keep_io_types``), so the
    app code of the fp32 file feeds this one unchanged.

    A runtime with fp16 kernels computes in fp16. onnxruntime's x86 CPU provider has no fp16
    convolution: it widens the weights to float32 when it loads the file and computes in
    float32, so the check here measures the weights' rounding (as LiteRT's fp16 check does).
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    proto = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    # the converter appends the input's Cast after the nodes that read it; ONNX wants
    # topological order (onnx.checker and other runtimes than onnxruntime refuse it otherwise)
    OnnxModel.graph_topological_sort(proto.graph, is_deterministic=True)
    _set_metadata(proto, metadata)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def quantize_int8(
    fp32: Path, path: Path, calibration: np.ndarray, metadata: Mapping[str, str]
) -> None:
    """Static int8 (QDQ, per-channel weights, uint8 activations) calibrated on ``calibration``
    (normalised images, (M, C, H, W) float32) from the fp32 file."""
    import onnx
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
            _Calibration(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    finally:
        pre.unlink(missing_ok=True)
    proto = onnx.load(str(path))
    _set_metadata(proto, metadata)
    onnx.save(proto, str(path))


def to_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    *,
    precision: str = "fp32",
    calibration: np.ndarray | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Convert a model to one ONNX file (dynamic batch), in its mobile form (see mobile_form).

    Args:
        model: Any eval-mode module taking (N, C, H, W) float32.
        example: An input batch (its C, H, W are the file's).
        path: The file to write.
        precision: "fp32", "fp16" (float32 input and output), or "int8" (static QDQ; needs
            ``calibration``).
        calibration: Normalised (M, C, H, W) float32 inputs that set int8 activation ranges.
        metadata: Strings stored in the file's metadata_props.

    Returns:
        ``path``.
    """
    path = Path(path)
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"ONNX has no {precision} path here; choose fp32, fp16 or int8")
    if precision == "int8" and calibration is None:
        raise ValueError("int8 needs calibration inputs")
    path.parent.mkdir(parents=True, exist_ok=True)
    mobile = mobile_form(model, tuple(example.shape[1:]))
    meta = dict(metadata or {})
    if precision == "fp32":
        write_fp32(mobile, example, path, meta)
        return path
    fp32 = path.with_name(path.stem + "_fp32.onnx")
    try:
        write_fp32(mobile, example, fp32, meta)
        if precision == "fp16":
            convert_fp16(fp32, path, meta)
        else:
            quantize_int8(fp32, path, np.asarray(calibration, np.float32), meta)
    finally:
        fp32.unlink(missing_ok=True)
    return path


def check(ctx: ExportContext, path: Path) -> dict[str, Any]:
    """Run the file in onnxruntime on every verification image and time one image."""
    sess = session(path, threads=ctx.threads)
    inputs = ctx.verify.inputs
    result = score(ctx.verify, run_session(sess, inputs))
    one = inputs[:1]
    result["latency_ms"] = median_latency_ms(
        lambda: sess.run([OUTPUT_NAME], {INPUT_NAME: one}), ctx.latency_runs
    )
    return result


def export(ctx: ExportContext, precisions: Sequence[str]) -> list[ExportResult]:
    """Export fp32 (always, as the base), and fp16 and int8 from it when asked."""
    folder = ctx.out / "onnx"
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / FILES["fp32"]
    started = time.perf_counter()
    try:
        require("onnx")
        write_fp32(ctx.model, ctx.example(2), fp32, run_metadata(ctx))
    except Exception as err:
        message = describe_failure(err, ctx.model, ctx.example())
        return [ExportResult("onnx", p, error=message) for p in precisions if p in FILES]
    jobs = [(p, folder / FILES[p]) for p in FILES if p in precisions]
    results: list[ExportResult] = []
    for precision, path in jobs:
        entry = ExportResult("onnx", precision, path=str(path.relative_to(ctx.out)))
        try:
            if precision == "fp16":
                convert_fp16(fp32, path, run_metadata(ctx))
            elif precision == "int8":
                quantize_int8(fp32, path, ctx.verify.calibration, run_metadata(ctx))
            entry.size_bytes = file_size(path)
            for key, value in check(ctx, path).items():
                setattr(entry, key, value)
            entry.status = "ok"
        except Exception as err:
            entry.error = describe_failure(err, ctx.model, ctx.example())
        entry.seconds = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        results.append(entry)
    if "fp32" not in precisions:
        fp32.unlink(missing_ok=True)
    return results
