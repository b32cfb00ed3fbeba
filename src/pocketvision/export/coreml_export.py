"""Core ML: coremltools converts the exported model (torch.export), ending in softmax, to a classifier with an
image input whose scale and bias are the training normalisation.

Files (the iOS versions each runs on are in the README, "Export"):

* ``Model.mlpackage`` (mlprogram, fp32 compute, iOS 15+), ``Model_fp16.mlpackage``
  (mlprogram, fp16, iOS 15+), ``Model_int8.mlpackage`` (mlprogram, int8 weights by linear
  symmetric quantization, fp16 compute, iOS 16+);
* ``Model.mlmodel`` (neuralnetwork, fp32, Core ML 3 = iOS 13+), the older format.

Core ML runs only on Apple platforms. On Linux the spec is checked (input type and size,
scale and bias, labels, softmax before the classifier, output names) and the entry says
"unverified"; on macOS every verification image is also classified and compared.
"""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketvision import __version__
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

INPUT_NAME = "image"
LABEL_NAME = "classLabel"
# (precision, variant) -> file name
FILES = {
    ("fp32", "mlprogram"): "Model.mlpackage",
    ("fp16", "mlprogram"): "Model_fp16.mlpackage",
    ("int8", "mlprogram"): "Model_int8.mlpackage",
    ("fp32", "neuralnetwork"): "Model.mlmodel",
}
MIN_IOS = {"mlprogram": 15, "neuralnetwork": 13, "int8": 16}


def folded_normalisation(mean: Sequence[float], std: Sequence[float]) -> tuple[float, list[float]]:
    """Core ML's image scale and per-channel bias: pixel * scale + bias = (pixel/255 - m) / s.

    Core ML has one scale for all channels, so a per-channel std folds in only when all
    channels share it; otherwise scale is 1/255, bias 0, and the graph divides by std itself.
    """
    if np.allclose(std, std[0], rtol=0, atol=1e-7):
        return 1.0 / (255.0 * std[0]), [-m / s for m, s in zip(mean, std, strict=True)]
    return 1.0 / 255.0, [0.0] * len(mean)


class Probabilities(nn.Module):
    """The model as Core ML sees it: a scaled image in, softmax probabilities out."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        scale, _ = folded_normalisation(mean, std)
        self.in_graph = scale == 1.0 / 255.0 and not np.allclose(std, 1.0)
        shape = (1, len(mean), 1, 1)
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(shape))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.in_graph:  # per-channel std that the image input could not absorb
            image = (image - self.mean) / self.std
        return torch.softmax(self.model(image), dim=1)


def convert(
    model: nn.Module,
    *,
    prep: Preprocessing,
    labels: Sequence[str],
    name: str,
    precision: str = "fp32",
    variant: str = "mlprogram",
) -> Any:
    """Convert ``model`` (as given) to an MLModel of one precision and container, with metadata."""
    import coremltools as ct

    c, h, w = prep.input_size
    scale, bias = folded_normalisation(prep.mean, prep.std)
    wrapped = Probabilities(model, prep.mean, prep.std).eval()
    # torch.export, not jit.trace: a trace keeps shape arithmetic as int() casts that
    # coremltools cannot convert (ShuffleNet's channel shuffle); export fixes the shapes.
    with torch.no_grad():
        program = torch.export.export(wrapped, (torch.rand(1, c, h, w),)).run_decompositions({})
    image = ct.ImageType(
        name=INPUT_NAME,
        shape=(1, c, h, w),
        scale=scale,
        # neuralnetwork wants a float for grayscale, mlprogram takes the list
        bias=bias[0] if (c == 1 and variant == "neuralnetwork") else bias,
        color_layout=ct.colorlayout.GRAYSCALE if c == 1 else ct.colorlayout.RGB,
    )
    kwargs: dict[str, Any] = {}
    if variant == "mlprogram":
        ios = MIN_IOS["int8"] if precision == "int8" else MIN_IOS["mlprogram"]
        kwargs["minimum_deployment_target"] = getattr(ct.target, f"iOS{ios}")
        kwargs["compute_precision"] = (
            ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
        )
    mlmodel = ct.convert(
        program,
        inputs=[image],
        classifier_config=ct.ClassifierConfig(list(labels), predicted_feature_name=LABEL_NAME),
        convert_to=variant,
        **kwargs,
    )
    if precision == "int8":
        from coremltools.optimize.coreml import (
            OpLinearQuantizerConfig,
            OptimizationConfig,
            linear_quantize_weights,
        )

        config = OptimizationConfig(
            global_config=OpLinearQuantizerConfig(mode="linear_symmetric", weight_threshold=0)
        )
        mlmodel = linear_quantize_weights(mlmodel, config=config)
    describe(mlmodel, prep=prep, labels=labels, name=name, precision=precision)
    return mlmodel


def describe(
    model: Any, *, prep: Preprocessing, labels: Sequence[str], name: str, precision: str
) -> None:
    """Author, license, description, version, input/output descriptions, preprocessing."""
    c, h, w = prep.input_size
    mode = "grayscale" if c == 1 else "RGB"
    model.author = "pocketvision"
    model.license = "Apache-2.0 (pocketvision); weights: as licensed by the training data owner"
    model.short_description = f"{name} image classifier ({len(labels)} classes, {precision})"
    model.version = __version__
    model.input_description[INPUT_NAME] = (
        f"{w}x{h} {mode} image, stretched to this size (no crop); normalised inside the model "
        f"as (pixel/255 - mean) / std with mean={list(prep.mean)}, std={list(prep.std)}"
    )
    spec = model.get_spec()
    probs = spec.description.predictedProbabilitiesName
    model.output_description[LABEL_NAME] = "most likely class label"
    model.output_description[probs] = "probability of every class label (softmax)"
    model.user_defined_metadata.update(
        {
            "com.pocketvision.model": name,
            "com.pocketvision.mean": ",".join(map(str, prep.mean)),
            "com.pocketvision.std": ",".join(map(str, prep.std)),
            "com.pocketvision.input_size": ",".join(map(str, prep.input_size)),
            "com.pocketvision.labels": "\n".join(labels),
        }
    )


def _const_values(block: Any) -> dict[str, list[Any]]:
    """Name -> values of every const op in an mlprogram block."""
    values: dict[str, list[Any]] = {}
    for op in block.operations:
        if op.type != "const":
            continue
        name = op.attributes["name"].immediateValue.tensor.strings.values[0]
        tensor = op.attributes["val"].immediateValue.tensor
        for kind in ("floats", "strings", "ints"):
            if getattr(tensor, kind).values:
                values[name] = list(getattr(tensor, kind).values)
    return values


def inspect_spec(spec: Any) -> dict[str, Any]:
    """What an app relies on, read back from a saved model's spec."""
    desc = spec.description
    image = desc.input[0].type.imageType
    info: dict[str, Any] = {
        "inputs": [i.name for i in desc.input],
        "input_type": desc.input[0].type.WhichOneof("Type"),
        "width": image.width,
        "height": image.height,
        "color": "grayscale" if image.colorSpace == 10 else "RGB",
        "outputs": [o.name for o in desc.output],
        "label_name": desc.predictedFeatureName,
        "probabilities_name": desc.predictedProbabilitiesName,
        "spec_version": spec.specificationVersion,
        "metadata": dict(desc.metadata.userDefined),
        "author": desc.metadata.author,
    }
    kind = spec.WhichOneof("Type")
    info["type"] = kind
    channels = 1 if info["color"] == "grayscale" else 3
    if kind == "neuralNetworkClassifier":
        info.update(_inspect_neural_network(spec.neuralNetworkClassifier, channels))
    else:
        info.update(_inspect_ml_program(spec.mlProgram, channels))
    return info


def _inspect_neural_network(nn_spec: Any, channels: int) -> dict[str, Any]:
    """Scale, bias, labels and the final softmax of a neuralnetwork classifier."""
    info: dict[str, Any] = {}
    scaler = nn_spec.preprocessing[0].scaler
    info["scale"] = scaler.channelScale
    info["bias"] = (
        [scaler.grayBias] if channels == 1 else [scaler.redBias, scaler.greenBias, scaler.blueBias]
    )
    info["labels"] = list(nn_spec.stringClassLabels.vector)
    last = nn_spec.layers[-1]
    info["ends_in_softmax"] = last.WhichOneof("layer") in ("softmax", "softmaxND")
    return info


def _inspect_ml_program(program: Any, channels: int) -> dict[str, Any]:
    """Scale, bias, labels and the final softmax of an ML program's main function."""
    info: dict[str, Any] = {}
    function = program.functions["main"]
    block = function.block_specializations[function.opset]
    consts = _const_values(block)
    ops = {op.outputs[0].name: op for op in block.operations if op.outputs}

    def arg(op: Any, name: str) -> str:
        return op.inputs[name].arguments[0].name

    scaled = next(
        (o for o in block.operations if o.type == "mul" and arg(o, "x") == INPUT_NAME), None
    )
    # coremltools leaves out the mul for scale 1 and the add for zero bias
    info["scale"] = consts[arg(scaled, "y")][0] if scaled is not None else 1.0
    biased = next(
        (
            o
            for o in block.operations
            if o.type == "add"
            and arg(o, "x") == (scaled.outputs[0].name if scaled is not None else INPUT_NAME)
        ),
        None,
    )
    info["bias"] = consts[arg(biased, "y")] if biased is not None else [0.0] * channels
    classify = next(o for o in block.operations if o.type == "classify")
    # the labels are an immediate list value of the classify op, not a const
    classes = classify.inputs["classes"].arguments[0].value.immediateValue.list.values
    info["labels"] = [v.immediateValue.tensor.strings.values[0] for v in classes]
    producer = ops.get(arg(classify, "probabilities"))
    # fp16 programs cast back to fp32 just before the classifier
    while producer is not None and producer.type == "cast":
        producer = ops.get(arg(producer, "x"))
    info["ends_in_softmax"] = producer is not None and producer.type == "softmax"
    return info


def spec_problems(info: dict[str, Any], prep: Preprocessing, labels: Sequence[str]) -> list[str]:
    """Every way the saved spec differs from what the run says the app must feed it."""
    c, h, w = prep.input_size
    scale, bias = folded_normalisation(prep.mean, prep.std)
    want = {
        "inputs": [INPUT_NAME],
        "input_type": "imageType",
        "width": w,
        "height": h,
        "color": "grayscale" if c == 1 else "RGB",
        "labels": list(labels),
        "label_name": LABEL_NAME,
        "ends_in_softmax": True,
    }
    problems = [
        f"{k} is {info.get(k)!r}, expected {v!r}" for k, v in want.items() if info.get(k) != v
    ]
    if info.get("scale") is None or not np.isclose(info["scale"], scale, rtol=1e-5):
        problems.append(f"image scale is {info.get('scale')}, expected {scale}")
    if info.get("bias") is None or not np.allclose(info["bias"], bias, rtol=1e-5, atol=1e-6):
        problems.append(f"image bias is {info.get('bias')}, expected {bias}")
    if sorted(info["outputs"]) != sorted([LABEL_NAME, info["probabilities_name"]]):
        problems.append(f"outputs are {info['outputs']}")
    return problems


def can_predict() -> bool:
    """Core ML predictions need macOS (coremltools' native library exists only there)."""
    return platform.system() == "Darwin"


def check_predictions(ctx: ExportContext, path: Path) -> dict[str, Any]:
    """macOS only: classify every verification image and compare probabilities."""
    import coremltools as ct
    from PIL import Image

    model = ct.models.MLModel(str(path))
    probs_name = model.get_spec().description.predictedProbabilitiesName
    mode = ctx.prep.color_mode

    def run(image: np.ndarray) -> np.ndarray:
        array = image[0] if mode == "L" else image.transpose(1, 2, 0)
        out = model.predict({INPUT_NAME: Image.fromarray(array, mode)})[probs_name]
        return np.array([out[label] for label in ctx.labels], dtype=np.float32)

    outputs = np.stack([run(image) for image in ctx.verify.images])
    result = score(ctx.verify, outputs, probabilities=True)
    result["latency_ms"] = median_latency_ms(lambda: run(ctx.verify.images[0]), ctx.latency_runs)
    return result


def save(mlmodel: Any, path: Path) -> None:
    """Save over any earlier file or package at ``path``."""
    if path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    mlmodel.save(str(path))


def to_coreml(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    *,
    precision: str = "fp32",
    variant: str = "mlprogram",
    labels: Sequence[str] | None = None,
    preprocessing: Preprocessing | None = None,
    name: str | None = None,
) -> Path:
    """Convert a model to a Core ML classifier with an image input, in its mobile form.

    Args:
        model: Any eval-mode module taking (N, C, H, W) float32.
        example: An input batch (its C, H, W are the image input's).
        path: The .mlpackage (mlprogram) or .mlmodel (neuralnetwork) to write.
        precision: "fp32", "fp16" or "int8" (int8 weights; mlprogram only).
        variant: "mlprogram" or "neuralnetwork" (fp32 only).
        labels: Class names (default "0".."K-1").
        preprocessing: The normalisation folded into the image input (default: mean 0, std 1,
            i.e. the model takes pixel / 255).
        name: The model's name in the metadata (default: its class name).

    Returns:
        ``path``.
    """
    path = Path(path)
    size = tuple(int(d) for d in example.shape[1:])
    if labels is None:
        with torch.no_grad():
            labels = [str(i) for i in range(model(example[:1]).shape[1])]
    if preprocessing is None:
        channels = size[0]
        preprocessing = Preprocessing(
            (size[0], size[1], size[2]), (0.0,) * channels, (1.0,) * channels
        )
    mlmodel = convert(
        mobile_form(model, size),
        prep=preprocessing,
        labels=labels,
        name=name or type(model).__name__,
        precision=precision,
        variant=variant,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    save(mlmodel, path)
    return path


def _write_and_check(ctx: ExportContext, entry: ExportResult, path: Path) -> None:
    """Convert one (precision, variant), save it, check the spec and, on macOS, predictions."""
    precision, variant = entry.precision, entry.variant or "mlprogram"
    require("coreml")
    import coremltools as ct

    mlmodel = convert(
        ctx.model,
        prep=ctx.prep,
        labels=ctx.labels,
        name=ctx.run.spec.name,
        precision=precision,
        variant=variant,
    )
    save(mlmodel, path)
    entry.size_bytes = file_size(path)
    info = inspect_spec(ct.utils.load_spec(str(path)))
    ios = MIN_IOS["int8"] if precision == "int8" else MIN_IOS[variant]
    entry.notes.append(f"iOS {ios}+ (spec version {info['spec_version']})")
    problems = spec_problems(info, ctx.prep, ctx.labels)
    if problems:
        entry.error = "spec check: " + "; ".join(problems)
    elif can_predict():
        for key, value in check_predictions(ctx, path).items():
            setattr(entry, key, value)
        entry.status = "ok"
    else:
        entry.status = "unverified"
        entry.error = "spec checked; predictions are checked only on macOS"


def export(ctx: ExportContext, precisions: Sequence[str]) -> list[ExportResult]:
    """mlprogram at every asked precision, plus the neuralnetwork .mlmodel with fp32."""
    folder = ctx.out / "coreml"
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(p, "mlprogram") for p in ("fp32", "fp16", "int8") if p in precisions]
    if "fp32" in precisions:
        jobs.append(("fp32", "neuralnetwork"))
    results = []
    for precision, variant in jobs:
        started = time.perf_counter()
        path = folder / FILES[(precision, variant)]
        entry = ExportResult(
            "coreml", precision, path=str(path.relative_to(ctx.out)), variant=variant
        )
        try:
            _write_and_check(ctx, entry, path)
        except Exception as err:
            entry.error = describe_failure(err, ctx.model, ctx.example())
        entry.seconds = round(time.perf_counter() - started, 3)
        results.append(entry)
    return results
