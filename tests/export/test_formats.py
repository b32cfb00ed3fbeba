"""fp32 exports compute what PyTorch computes: max |logit difference| <= 1e-4 and 100 % top-1
agreement on 500 Fashion-MNIST validation images, for one model of every registered family
(small inputs) and for the demo model, in every format whose runtime runs here.

Converting a graph costs seconds to a minute per format and model on one core, so ``make
test`` runs part of the family x format matrix: the demo model, LeNet-5 and SqueezeNet through
all four formats, every other family through ONNX (onnxruntime), or through Core ML (spec
check) where the family's own tests in tests/models/ already export it to ONNX. The rest of
the matrix is marked ``extended`` and runs with ``make test-all`` (or
``POCKETVISION_EXPORT_ALL=1``, which puts the whole matrix in the default test); numbers in
the README, "Export".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from export_support import make_run

from pocketvision import list_models, model_info
from pocketvision.export import export_run

# Shrinks for families whose smallest registered model takes minutes to convert
# (NASNet's 12 cells); the cell code and ops are the same.
SMALL_KWARGS: dict[str, dict[str, Any]] = {
    "nasnet_a_mobile": {"num_cells": 1, "penultimate_filters": 192},
}
# Where float32 rounding alone moves the logits by more than 1e-4: MobileOne's 43 blocks of
# summed BN branches put its float32 train form 8e-5 from float64 on these inputs (logits up
# to 11), and the folded net (what is exported) as far on the other side (docs/models.md).
TOLERANCE: dict[str, float] = {"mobileone_s0": 1e-3}
DEMO = ("mobilenet_v1_050", 28)  # pocketvision.demo's model at Fashion-MNIST's size
FULL = os.environ.get("POCKETVISION_EXPORT_ALL") == "1"
ALL_FORMATS = ("onnx", "coreml", "tflite", "executorch")
EVERY_FORMAT_FOR = {"lenet5", "squeezenet1_1"}  # besides the demo model
# families whose tests in tests/models/ export them to ONNX and hold the file to PyTorch
OWN_ONNX_TEST = {"efficientnet_lite0", "mobilenet_v4_conv_small", "mobileone_s0"}


def family_representatives() -> list[str]:
    """The registered model with the fewest published parameters in each family, except
    that the demo model stands for its own family (it is tested anyway)."""
    best: dict[str, str] = {}
    for name in list_models():
        family = model_info(name).family
        if family not in best or model_info(name).params < model_info(best[family]).params:
            best[family] = name
    best[model_info(DEMO[0]).family] = DEMO[0]
    return sorted(best.values())


def default_formats(name: str) -> tuple[str, ...]:
    """The formats ``make test`` converts ``name`` to (see the module docstring)."""
    if FULL or name == DEMO[0] or name in EVERY_FORMAT_FOR:
        return ALL_FORMATS
    return ("coreml",) if name in OWN_ONNX_TEST else ("onnx",)


def _cases() -> list[Any]:
    """(name, size, formats) for every family: its default formats, then the rest of the
    matrix as an ``extended`` case."""
    cases = []
    for name in family_representatives():
        size = DEMO[1] if name == DEMO[0] else 32
        first = default_formats(name)
        rest = tuple(f for f in ALL_FORMATS if f not in first)
        cases.append(pytest.param(name, size, first, id=f"{name}-{size}px"))
        if rest:
            cases.append(
                pytest.param(
                    name, size, rest, id=f"{name}-{size}px-rest", marks=pytest.mark.extended
                )
            )
    return cases


@pytest.mark.slow
@pytest.mark.parametrize(("name", "size", "formats"), _cases())
def test_fp32_matches_pytorch(tmp_path: Path, name: str, size: int, formats: tuple) -> None:
    run = make_run(tmp_path, name, size=size, kwargs=SMALL_KWARGS.get(name))
    results = export_run(
        run,
        formats=",".join(formats),
        quantize="none",
        verify_images=500,
        codegen=False,
        isolate=False,
    )
    by_format: dict[str, list[Any]] = {}
    for r in results:
        by_format.setdefault(r.format, []).append(r)
    assert sorted(by_format) == sorted(formats)
    for r in results:
        assert r.precision == "fp32"
        assert r.size_bytes and (run / "export" / r.path).exists()
        if r.format == "coreml":
            # no Core ML runtime off macOS: the spec must be right and the status says so
            assert r.status in ("unverified", "ok"), r.error
            continue
        assert r.status == "ok", f"{r.format}: {r.error}"
        assert r.max_abs_diff <= TOLERANCE.get(name, 1e-4), f"{r.format}: {r.max_abs_diff}"
        assert r.top1_agreement == 1.0, f"{r.format}: {r.top1_agreement}"
        assert r.val_accuracy is not None and r.latency_ms is not None and r.latency_ms > 0
    for r in by_format.get("executorch", []):
        assert r.notes[0] == "whole graph delegated to XNNPACK", r.notes
    for r in by_format.get("tflite", []):
        # inner tensors carry short layer paths, the signature keeps the app-facing names
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(run / "export" / r.path))
        names = [t["name"] for t in interpreter.get_tensor_details()]
        assert max(len(n) for n in names) <= 64, max(names, key=len)
        assert interpreter.get_signature_list() == {
            "serving_default": {"inputs": ["image"], "outputs": ["logits"]}
        }
