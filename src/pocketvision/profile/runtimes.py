"""The runtimes ``pocketvision profile`` can time, each as "can it run here?" + "prepare a call".

``prepare(model, x, workdir, threads)`` converts the model for the runtime (conversion time is
not measured) and returns a zero-argument callable running one inference on the batch ``x``;
the callable returns the output (see :func:`output_array`), so every runtime can be held to
eager. ``workdir`` belongs to one model and runtime (shared with the runtime named by
``same_at_batch_1``): a file converted there for one input shape is reused when another batch
size of the same shape is prepared.

The deploy runtimes (onnxruntime, litert, executorch) convert with the model-level core of
:mod:`pocketvision.export` (``to_onnx``, ``to_tflite``, ``to_pte``: the model's mobile form,
adaptive pools made fixed), so the profiler times exactly the files ``pocketvision export``
writes. Their packages come from the export formats table (``format``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketvision.export.agreement import as_array
from pocketvision.export.formats import BY_NAME, importable

Call = Callable[[], object]


@dataclass(frozen=True)
class RuntimeSpec:
    """A runtime: the modules it needs, how to prepare a timed call, and any other condition.

    Attributes:
        name: What ``--runtimes`` calls it.
        modules: Python modules that must be importable.
        prepare: (model, batch, workdir, threads) -> zero-argument call returning the output.
        extra: The pocketvision extra that installs ``modules``.
        available: Returns why the runtime cannot run here beyond its modules (no GPU, no
            provider), or "" when it can.
        gpu: It runs on the GPU, so its share of peak is against the GPU's measured peak.
        same_at_batch_1: The runtime it is identical to at batch 1 (skipped there), or "".
        format: The export format whose file it runs; its modules are added to ``modules``.
    """

    name: str
    modules: tuple[str, ...]
    prepare: Callable[[nn.Module, torch.Tensor, Path, int], Call]
    extra: str = "export"
    available: Callable[[], str] | None = None
    gpu: bool = False
    same_at_batch_1: str = ""
    format: str = ""

    def missing(self) -> str:
        """Why this runtime cannot run here, or "" when it can."""
        modules = self.modules + (BY_NAME[self.format].modules if self.format else ())
        for module in dict.fromkeys(modules):
            if not importable(module):
                return f"{module} is not installed (pip install 'pocketvision[{self.extra}]')"
        return self.available() if self.available else ""


def output_array(out: object) -> np.ndarray:
    """A prepared call's output (tensor, array, or a list of them) as a float32 array."""
    return as_array(out)


# -- PyTorch --------------------------------------------------------------------------------


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


def _cuda_missing() -> str:
    return "" if torch.cuda.is_available() else "no CUDA GPU (torch.cuda.is_available() is False)"


@contextlib.contextmanager
def strict_fp32() -> Iterator[None]:
    """TF32 off in cuDNN and cuBLAS for the block, the previous flags restored afterwards.

    fp32 as on the CPU: cuDNN and cuBLAS would otherwise round to TF32 (10-bit mantissa),
    which misses the output check against eager CPU and is not the fp32 the peak is.
    """
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = cudnn
        torch.backends.cuda.matmul.allow_tf32 = matmul


def _on_cuda(model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    import copy

    return copy.deepcopy(model).cuda().eval(), x.cuda()


def _synced(fn: Callable[[], torch.Tensor]) -> Call:
    # CUDA launches are asynchronous: a timed call must wait for the kernels it started.
    def call() -> object:
        with torch.inference_mode(), strict_fp32():
            out = fn()
        torch.cuda.synchronize()
        return out

    return call


def _eager_cuda(model: nn.Module, x: torch.Tensor, workdir: Path, threads: int) -> Call:
    gpu_model, gpu_x = _on_cuda(model, x)
    return _synced(lambda: gpu_model(gpu_x))


def _compile_cuda(model: nn.Module, x: torch.Tensor, workdir: Path, threads: int) -> Call:
    gpu_model, gpu_x = _on_cuda(model, x)
    compiled = torch.compile(gpu_model, dynamic=False)
    call = _synced(lambda: compiled(gpu_x))
    call()  # compile now, outside the timed runs
    return call


# -- deploy runtimes, through pocketvision.export ---------------------------------------------


def _shape(x: torch.Tensor) -> str:
    return "x".join(str(d) for d in x.shape[1:])


def _onnxruntime_session(
    model: nn.Module, x: torch.Tensor, workdir: Path, threads: int, providers: list[str]
) -> Call:
    from pocketvision.export.onnx_export import INPUT_NAME, OUTPUT_NAME, session, to_onnx

    path = workdir / f"model_{_shape(x)}.onnx"  # dynamic batch: one file serves every batch
    if not path.exists():
        to_onnx(model, x, path)
    sess = session(path, threads=threads, providers=providers)
    feed = {INPUT_NAME: x.numpy()}
    return lambda: sess.run([OUTPUT_NAME], feed)[0]


def _onnxruntime(model: nn.Module, x: torch.Tensor, workdir: Path, threads: int) -> Call:
    return _onnxruntime_session(model, x, workdir, threads, ["CPUExecutionProvider"])


def _onnxruntime_cuda(model: nn.Module, x: torch.Tensor, workdir: Path, threads: int) -> Call:
    # CPU as fallback for any op the CUDA provider lacks, as ORT recommends.
    return _onnxruntime_session(
        model, x, workdir, threads, ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )


def _ort_cuda_missing() -> str:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "onnxruntime has no CUDAExecutionProvider here (pip install onnxruntime-gpu)"
    return ""


def _litert_file(model: nn.Module, x: torch.Tensor, workdir: Path, threads: int) -> Path:
    from pocketvision.export.tflite_export import to_tflite

    path = workdir / f"model_{_shape(x)}.tflite"  # batch 1, as exported for a phone
    if not path.exists():
        to_tflite(model, x, path)
    return path


def _litert_interpreter(
    model: nn.Module, x: torch.Tensor, workdir: Path, threads: int, batch: int
) -> tuple[Any, int, int]:
    """(interpreter, input index, output index) for the batch-1 file, its input at ``batch``."""
    from pocketvision.export.tflite_export import interpreter

    interp = interpreter(_litert_file(model, x, workdir, threads), threads=threads, batch=batch)
    index = interp.get_input_details()[0]["index"]
    return interp, index, interp.get_output_details()[0]["index"]


def _litert(model: nn.Module, x: torch.Tensor, workdir: Path, threads: int) -> Call:
    from pocketvision.export.tflite_export import nhwc

    # The exporter converts at batch 1 (a phone classifies one picture); the interpreter
    # resizes the input to the profiled batch (XNNPACK re-plans the graph for it).
    interpreter, index, out = _litert_interpreter(model, x, workdir, threads, len(x))
    data = nhwc(x.numpy())

    def call() -> object:
        interpreter.set_tensor(index, data)
        interpreter.invoke()
        return interpreter.get_tensor(out)

    return call


def _litert_loop(model: nn.Module, x: torch.Tensor, workdir: Path, threads: int) -> Call:
    """The batch-1 file as exported, invoked once per image of the batch.

    What an app does with a burst of camera frames, and what a server does when a big batch
    would leave the cache: each image's activations (11.5 MiB for MobileNetV2 at 224) stay in
    L2/L3 instead of a whole batch's streaming through memory. Also runs graphs whose batch is
    baked into a reshape (ShuffleNet, NASNet), which ``litert`` cannot resize.
    """
    from pocketvision.export.tflite_export import nhwc

    interpreter, index, out = _litert_interpreter(model, x, workdir, threads, 1)
    images = nhwc(x.numpy())

    def call() -> object:
        logits = []
        for i in range(len(images)):
            interpreter.set_tensor(index, images[i : i + 1])
            interpreter.invoke()
            logits.append(interpreter.get_tensor(out))
        return np.concatenate(logits)

    return call


def _executorch(model: nn.Module, x: torch.Tensor, workdir: Path, threads: int) -> Call:
    from executorch.extension.pybindings import portable_lib

    from pocketvision.export.executorch_export import load_method, to_pte

    # .pte programs have static shapes: lower at the profiled batch, not the exporter's 1.
    path = workdir / f"model_b{x.shape[0]}_{_shape(x)}.pte"
    if not path.exists():
        to_pte(model, x, path)
    # XNNPACK's thread pool is process-wide in the Python runtime; size it to the request.
    portable_lib._unsafe_reset_threadpool(threads)
    method = load_method(path)
    inputs = [x.contiguous()]
    return lambda: method.execute(inputs)[0]


RUNTIMES: dict[str, RuntimeSpec] = {
    spec.name: spec
    for spec in (
        RuntimeSpec("eager", ("torch",), _eager),
        RuntimeSpec("compile", ("torch",), _compile),
        RuntimeSpec("onnxruntime", (), _onnxruntime, format="onnx"),
        RuntimeSpec("litert", (), _litert, format="tflite"),
        RuntimeSpec("litert_loop", (), _litert_loop, same_at_batch_1="litert", format="tflite"),
        RuntimeSpec("executorch", (), _executorch, format="executorch"),
        RuntimeSpec("eager_cuda", ("torch",), _eager_cuda, available=_cuda_missing, gpu=True),
        RuntimeSpec("compile_cuda", ("torch",), _compile_cuda, available=_cuda_missing, gpu=True),
        RuntimeSpec(
            "onnxruntime_cuda",
            (),
            _onnxruntime_cuda,
            available=_ort_cuda_missing,
            gpu=True,
            format="onnx",
        ),
    )
}

DEPLOY_RUNTIMES = ("onnxruntime", "litert", "litert_loop", "executorch")
GPU_RUNTIMES = tuple(name for name, spec in RUNTIMES.items() if spec.gpu)
