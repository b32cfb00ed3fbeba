"""The runtimes ``pocketvision profile`` can time, each as "is it installed?" + "prepare a call".

``prepare(model, x, workdir, threads)`` converts the model for the runtime (conversion time is
not measured) and returns a zero-argument callable running one inference on ``x``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

Call = Callable[[], object]


@dataclass(frozen=True)
class RuntimeSpec:
    """A runtime: the modules it needs and how to prepare a timed call."""

    name: str
    modules: tuple[str, ...]
    prepare: Callable[[nn.Module, torch.Tensor, Path, int], Call]
    extra: str = "export"

    def missing(self) -> str:
        """Why this runtime cannot run here, or "" when it can."""
        for module in self.modules:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install 'pocketvision[{self.extra}]')"
        return ""


def _eager(model: nn.Module, x: torch.Tensor, workdir: Path, threads: int) -> Call:
    def call() -> object:
        with torch.inference_mode():
            return model(x)

    return call


def _compile(model: nn.Module, x: torch.Tensor, workdir: Path, threads: int) -> Call:
    compiled = torch.compile(model, dynamic=False)

    def call() -> object:
        with torch.inference_mode():
            return compiled(x)

    call()  # compile now, outside the timed runs
    return call


def _onnxruntime(model: nn.Module, x: torch.Tensor, workdir: Path, threads: int) -> Call:
    import onnxruntime as ort

    from pocketvision.export.onnx import export_onnx

    path = export_onnx(model, x, workdir / "model.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)


def _litert(model: nn.Module, x: torch.Tensor, workdir: Path, threads: int) -> Call:
    from ai_edge_litert.interpreter import Interpreter

    from pocketvision.export.tflite import export_tflite

    path = export_tflite(model, x, workdir / "model.tflite")
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    data = x.numpy()

    def call() -> object:
        interpreter.set_tensor(index, data)
        interpreter.invoke()
        return None

    return call


def _executorch(model: nn.Module, x: torch.Tensor, workdir: Path, threads: int) -> Call:
    from executorch.runtime import Runtime

    from pocketvision.export.executorch import export_executorch

    path = export_executorch(model, x, workdir / "model.pte")
    method = Runtime.get().load_program(path).load_method("forward")
    return lambda: method.execute([x])


RUNTIMES: dict[str, RuntimeSpec] = {
    spec.name: spec
    for spec in (
        RuntimeSpec("eager", ("torch",), _eager),
        RuntimeSpec("compile", ("torch",), _compile),
        RuntimeSpec("onnxruntime", ("onnxruntime", "onnxscript"), _onnxruntime),
        RuntimeSpec("litert", ("ai_edge_litert", "litert_torch"), _litert),
        RuntimeSpec("executorch", ("executorch",), _executorch),
    )
}
