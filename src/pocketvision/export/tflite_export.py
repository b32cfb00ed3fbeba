"""TFLite / LiteRT: litert-torch converts the fp32 model and, after PT2E quantization
calibrated on training images, the full int8 one; ai-edge-quantizer derives fp16 (weights
cast to float16) and dynamic-range int8 from the fp32 flatbuffer; the ai-edge-litert
Interpreter checks every file.

Layout: the .tflite input is NHWC float32 ``(1, H, W, C)``, normalised as in training. Android
Bitmaps are row-major pixels with channels last, so the app fills the buffer in pixel order
with no transpose; the graph transposes to the model's NCHW itself. The signature is
``serving_default`` with input ``image`` and output ``logits``. Full int8 files take and
return int8 tensors; their quantization parameters are in the tensor details.

labels.txt travels inside the .tflite as a zip archive appended to the flatbuffer (the way
TFLite Support packs associated files: ``unzip -l model.tflite`` lists it); the interpreter
ignores the trailing bytes. No TFLite Support metadata flatbuffer is written (the
tflite-support package does not install with this toolchain).
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketvision import quantize as pt2e
from pocketvision.export.common import (
    ExportContext,
    ExportResult,
    describe_failure,
    file_size,
    mobile_form,
    require,
    score,
)
from pocketvision.mobile import INPUT_NAME, ChannelsLast
from pocketvision.rundir import read_qat_state
from pocketvision.timing import median_latency_ms

SIGNATURE = "serving_default"
# precision -> file name
FILES = {
    "fp32": "model_fp32.tflite",
    "fp16": "model_fp16.tflite",
    "int8_dynamic": "model_int8_dynamic.tflite",
    "int8": "model_int8.tflite",
}


def _litert_torch() -> Any:
    """litert_torch, with its per-pass progress log silenced (it prints ~40 lines a model)."""
    import litert_torch
    from litert_torch import progress

    progress.console.quiet = True
    return litert_torch


def nhwc(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def _nhwc_example(example: torch.Tensor) -> torch.Tensor:
    """One image of an NCHW batch, channels last: the batch-1 input a phone feeds."""
    return example[:1].permute(0, 2, 3, 1).contiguous()


def convert_fp32(model: nn.Module, example: torch.Tensor) -> bytes:
    """The fp32 flatbuffer of ``model`` (as given) at batch 1; ``example`` is NCHW."""
    litert_torch = _litert_torch()
    edge = litert_torch.convert(
        ChannelsLast(model).eval(),
        sample_args=(),
        sample_kwargs={INPUT_NAME: _nhwc_example(example)},
    )
    return bytes(edge.model_content())


def quantize(fp32: bytes, precision: str) -> bytes:
    """fp16 or int8_dynamic from the fp32 flatbuffer with ai-edge-quantizer."""
    from ai_edge_quantizer import qtyping, quantizer, recipe, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    if precision == "fp16":
        manager = recipe_manager.RecipeManager()
        manager.add_weight_only_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            num_bits=16,
            algorithm_key=AlgorithmName.FLOAT_CASTING,
        )
        plan = manager.get_quantization_recipe()
    elif precision == "int8_dynamic":
        plan = recipe.dynamic_wi8_afp32()
    else:
        raise ValueError(f"no ai-edge-quantizer recipe for {precision}")
    quant = quantizer.Quantizer(bytearray(fp32), plan)
    result = quant.quantize(enable_progress_report=False)
    if result.quantized_model is None:
        raise RuntimeError(f"ai-edge-quantizer produced no {precision} model")
    return bytes(result.quantized_model)


def convert_int8(model: nn.Module, example: torch.Tensor, calibration: np.ndarray) -> bytes:
    """Full int8 (weights per channel, activations per tensor, int8 input and output) by
    PT2E quantization in PyTorch (:mod:`pocketvision.quantize`), calibrated on
    ``calibration`` (normalised NCHW float32 training images), then converted.

    ai-edge-quantizer's static recipe on the fp32 flatbuffer was measured to lose 3-7
    accuracy points on a Fashion-MNIST LeNet with 200 calibration images; this path lost none.
    """
    example = _nhwc_example(example)
    with torch.no_grad():
        prepared = pt2e.prepare_ptq(model, example)
        for image in nhwc(np.asarray(calibration, np.float32)):
            prepared(**{INPUT_NAME: torch.from_numpy(image[None])})
        return pt2e.lower_int8(pt2e.convert(prepared), example)


def convert_qat_int8(
    model: nn.Module, example: torch.Tensor, state: dict[str, torch.Tensor]
) -> bytes:
    """Full int8 from a `train --qat` run: its trained fake-quantised graph, converted (no
    calibration: the graph's ranges were learned). ``model`` is the run's model as loaded."""
    with torch.no_grad():
        prepared = pt2e.load_qat(model, tuple(example.shape[1:]), state)
        return pt2e.lower_int8(pt2e.convert(prepared), _nhwc_example(example))


_LAYER = re.compile(r"^[\w.]+?_(\w+)$")  # "pkg.mod.Class_attr" -> "attr"


def _layer_path(location: str) -> str:
    """``blocks.12.pw.2`` from the converter's ``pkg.Class_blocks/pkg.Block_12/...;...`` name."""
    parts = []
    for segment in location.split(";")[0].split("/"):
        match = _LAYER.match(segment)
        if match:
            parts.append(match.group(1))
    return ".".join(parts[1:] if parts[:1] == ["model"] else parts)[-48:]


def compact_names(flatbuffer: bytes) -> bytes:
    """Shorten every inner tensor name to its layer path (``blocks.12.pw.2#57``).

    The converter names tensors after the full module stack of every op fused into them
    (class paths joined with ';'), ~500 bytes each: 47 KB, 5 % of an int8 MobileNet v1 0.5.
    Input and output tensors, signatures, metadata and all numbers stay as they are.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(flatbuffer)
    for subgraph in model.subgraphs:
        keep = {int(i) for i in subgraph.inputs} | {int(i) for i in subgraph.outputs}
        for index, tensor in enumerate(subgraph.tensors):
            if index not in keep and tensor.name:
                layer = _layer_path(tensor.name.decode(errors="replace"))
                tensor.name = f"{layer}#{index}".encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def with_labels(flatbuffer: bytes, labels: Sequence[str]) -> bytes:
    """Append labels.txt as a zip archive (TFLite Support's associated-file packing)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("labels.txt", "\n".join(labels) + "\n")
    return flatbuffer + archive.getvalue()


def finish(flatbuffer: bytes, labels: Sequence[str] | None) -> bytes:
    """The file as written: inner tensor names compacted, labels.txt appended when given."""
    compact = compact_names(flatbuffer)
    return compact if labels is None else with_labels(compact, labels)


def convert(
    model: nn.Module,
    example: torch.Tensor,
    precision: str,
    calibration: np.ndarray | None = None,
    fp32: bytes | None = None,
) -> bytes:
    """The raw flatbuffer of one precision; fp16 and int8_dynamic derive from ``fp32`` (the
    fp32 flatbuffer, converted now when not given), int8 needs ``calibration``."""
    if precision == "int8":
        if calibration is None:
            raise ValueError("int8 needs calibration inputs")
        return convert_int8(model, example, calibration)
    if precision not in FILES:
        raise ValueError(f"no LiteRT {precision} path; choose from {', '.join(FILES)}")
    base = fp32 if fp32 is not None else convert_fp32(model, example)
    return base if precision == "fp32" else quantize(base, precision)


def to_tflite(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    *,
    precision: str = "fp32",
    calibration: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
) -> Path:
    """Convert a model to one .tflite file (batch 1, NHWC input), in its mobile form.

    Args:
        model: Any eval-mode module taking (N, C, H, W) float32.
        example: An NCHW input batch; the file takes one image of its shape, channels last.
        path: The file to write.
        precision: "fp32", "fp16", "int8_dynamic" or "int8" (full int8; needs calibration).
        calibration: Normalised (M, C, H, W) float32 inputs that set int8 activation ranges.
        labels: Class names appended to the file as labels.txt (see the module docstring).

    Returns:
        ``path``.
    """
    path = Path(path)
    mobile = mobile_form(model, tuple(example.shape[1:]))
    data = convert(mobile, example, precision, calibration)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(finish(data, labels))
    return path


def interpreter(path: str | Path, *, threads: int = 1, batch: int = 1) -> Any:
    """A LiteRT Interpreter on the file, its input resized to ``batch``, tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    if batch != 1:
        detail = interp.get_input_details()[0]
        interp.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
    interp.allocate_tensors()
    return interp


def _quantize_input(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype == np.float32:
        return x
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def _dequantize_output(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return y
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale


def runner(path: str | Path, *, threads: int = 1) -> Callable[[np.ndarray], np.ndarray]:
    """A call running one (1, C, H, W) float32 image through the batch-1 file and returning
    its (1, K) float32 logits, as an app does: the input made NHWC (and quantized, for a
    full int8 file), the output dequantized."""
    interp = interpreter(path, threads=threads)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]

    def run(image: np.ndarray) -> np.ndarray:
        interp.set_tensor(inp["index"], _quantize_input(nhwc(image), inp))
        interp.invoke()
        return _dequantize_output(interp.get_tensor(out["index"]), out)

    return run


def check(ctx: ExportContext, path: Path) -> dict[str, Any]:
    """Run every verification image through the LiteRT interpreter (batch 1, as on a phone)."""
    run = runner(path, threads=ctx.threads)
    images = ctx.verify.inputs
    outputs = np.stack([run(images[i : i + 1])[0] for i in range(len(images))])
    result = score(ctx.verify, outputs)
    result["latency_ms"] = median_latency_ms(lambda: run(images[:1]), ctx.latency_runs)
    return result


def tensor_names(path: Path) -> dict[str, str]:
    """Signature and tensor names of an exported file, for the Kotlin code and its tests."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    signature = interpreter.get_signature_list()[SIGNATURE]
    return {
        "signature": SIGNATURE,
        "input": signature["inputs"][0],
        "output": signature["outputs"][0],
        "input_tensor": interpreter.get_input_details()[0]["name"],
        "output_tensor": interpreter.get_output_details()[0]["name"],
    }


def export(ctx: ExportContext, precisions: Sequence[str]) -> list[ExportResult]:
    """fp32 always (the others derive from it); fp16; int8 gives int8_dynamic and int8."""
    folder = ctx.out / "tflite"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [p for p in ("fp32", "fp16") if p in precisions]
    if "int8" in precisions:
        wanted += ["int8_dynamic", "int8"]
    started = time.perf_counter()
    qat = read_qat_state(ctx.run.path) if "int8" in wanted else None
    try:
        require("tflite")
        fp32 = convert_fp32(ctx.model, ctx.example())
    except Exception as err:
        message = describe_failure(err, ctx.model, ctx.example())
        return [ExportResult("tflite", p, error=message) for p in wanted]
    results = []
    for precision in wanted:
        path = folder / FILES[precision]
        entry = ExportResult("tflite", precision, path=str(path.relative_to(ctx.out)))
        try:
            if precision == "int8" and qat is not None:
                data = convert_qat_int8(ctx.run.model, ctx.example(), qat)
                entry.notes.append("from the quantisation-aware training (no calibration)")
            else:
                data = convert(ctx.model, ctx.example(), precision, ctx.verify.calibration, fp32)
            path.write_bytes(finish(data, ctx.labels))
            entry.size_bytes = file_size(path)
            for key, value in check(ctx, path).items():
                setattr(entry, key, value)
            entry.status = "ok"
        except Exception as err:
            entry.error = describe_failure(err, ctx.model, ctx.example())
        entry.seconds = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        results.append(entry)
    return results
