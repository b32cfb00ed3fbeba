"""Measurements that need no runtime but PyTorch: activation memory, bytes on disk, matmul peak,
process memory. (Timing statistics are :mod:`pocketvision.timing`; the machine record is
:func:`pocketvision.environment.environment`.)
"""

from __future__ import annotations

import importlib.util
import resource
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class _LiveBytes(TorchDispatchMode):
    """Tracks the bytes of every tensor storage created during a forward pass while it lives."""

    def __init__(self, ignore: set[int]) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._ignore = ignore  # storages of weights and the input (views of them cost nothing)
        self._seen: set[int] = set()

    def _release(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self._seen.discard(key)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key in self._seen or key in self._ignore or storage.nbytes() == 0:
                continue
            self._seen.add(key)
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._release, key, storage.nbytes())
        return out


def activation_peak_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Peak bytes of intermediate tensors alive at once during one eager inference pass.

    Weights and the input are not counted; every storage an op creates is counted from its
    creation until Python frees it, so in-place ops and views cost nothing extra.
    """
    owned = [*model.parameters(), *model.buffers(), x]
    tracker = _LiveBytes({t.untyped_storage().data_ptr() for t in owned})
    with torch.no_grad(), tracker:
        model(x)
    return tracker.peak


def _int8_state(model: nn.Module) -> dict[str, torch.Tensor]:
    # Weight-only int8 with one fp32 scale per output channel, as mobile converters store it.
    state: dict[str, torch.Tensor] = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        if name.endswith("weight") and t.ndim >= 2 and t.is_floating_point():
            scale = t.abs().amax(dim=tuple(range(1, t.ndim)), keepdim=True).clamp_min(1e-12) / 127
            state[name] = torch.round(t / scale).to(torch.int8).contiguous()
            state[name + ".scale"] = scale.flatten().float().contiguous()
        else:
            state[name] = t.contiguous()
    return state


def file_sizes(model: nn.Module) -> dict[str, int]:
    """Bytes of the weights written to disk (safetensors) at fp32, fp16 and weight-only int8."""
    states = {
        "fp32": {k: v.detach().cpu().float().contiguous() for k, v in model.state_dict().items()},
        "fp16": {k: v.detach().cpu().half().contiguous() for k, v in model.state_dict().items()},
        "int8": _int8_state(model),
    }
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision, state in states.items():
            path = Path(tmp) / f"{precision}.safetensors"
            save_file(state, str(path))
            sizes[precision] = path.stat().st_size
    return sizes


def matmul_peak_gflops(threads: int, size: int = 1024, repeats: int = 10) -> float:
    """The machine's measured fp32 matmul rate (GFLOP/s) with ``threads`` threads.

    The best of PyTorch's ``torch.mm`` and, when installed, ONNX Runtime's MatMul (MLAS), each
    the best of ``repeats`` runs at ``size`` and ``size // 2``. One library is not the
    machine: PyTorch's MKL takes its AVX2 path on AMD CPUs, and XNNPACK then "beats the peak".
    Short runs and best-of keep a time slice lost to another process out of the number.
    """
    best = 0.0
    for n in (size, size // 2):
        best = max(best, _torch_mm_gflops(threads, n, repeats))
        if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
            best = max(best, _onnxruntime_mm_gflops(threads, n, repeats))
    return best


def cuda_matmul_peak_gflops(size: int = 8192, repeats: int = 10) -> float | None:
    """The lent GPU's measured fp32 matmul rate (GFLOP/s, TF32 off), or None without CUDA.

    GPU runtimes are compared with this, not with the CPU's peak.
    """
    if not torch.cuda.is_available():
        return None
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        a = torch.randn(size, size, device="cuda")
        b = torch.randn(size, size, device="cuda")

        def mm() -> None:
            torch.mm(a, b)
            torch.cuda.synchronize()

        return 2 * size**3 / _best_seconds(mm, repeats) / 1e9
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _torch_mm_gflops(threads: int, size: int, repeats: int) -> float:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(size, size)
        b = torch.randn(size, size)
        return 2 * size**3 / _best_seconds(lambda: torch.mm(a, b), repeats) / 1e9
    finally:
        torch.set_num_threads(previous)


def _onnxruntime_mm_gflops(threads: int, size: int, repeats: int) -> float:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from pocketvision.export.onnx_export import session

    rng = np.random.default_rng(0)
    b = rng.standard_normal((size, size), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])],
        [numpy_helper.from_array(b, "b")],
    )
    # IR version 8 (opset 18's own): a newer onnx package writes an IR version that an older
    # onnxruntime refuses ("Unsupported model IR version")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    sess = session(model.SerializeToString(), threads=threads)
    feed = {"a": rng.standard_normal((size, size), dtype=np.float32)}
    return 2 * size**3 / _best_seconds(lambda: sess.run(None, feed), repeats) / 1e9


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
