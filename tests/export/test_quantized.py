"""Quantized files on a trained model: fp16 agrees with PyTorch on >= 99.5 % of test images,
int8 (ONNX, LiteRT, ExecuTorch; Core ML is spec-checked off macOS) loses at most 1 accuracy
point on the test split, and int8 files are a fraction of fp32.

The model is the trained demo run when one exists (``POCKETVISION_DEMO_RUN`` or
``runs/demo-fashion-mnist``, what ``make demo`` writes); otherwise the demo's architecture
(MobileNet v1 0.5, small_input) trained for a few seconds on Fashion-MNIST
(``trained_demo_run`` in tests/conftest.py, shared with the QAT tests): the same file sizes as
the demo's, and enough training for int8 rounding to have a measurable effect.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pocketvision.export import export_run
from pocketvision.rundir import BEST

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained_run(trained_demo_run: Path) -> Path:
    demo = Path(os.environ.get("POCKETVISION_DEMO_RUN", REPO / "runs" / "demo-fashion-mnist"))
    if (demo / BEST).exists() and (demo / "config.json").exists():
        return demo
    return trained_demo_run


pytestmark = pytest.mark.xdist_group("trained_demo_run")


@pytest.mark.slow
def test_fp16_and_int8_keep_accuracy(trained_run: Path, tmp_path: Path) -> None:
    results = export_run(
        trained_run,
        formats="onnx,tflite,coreml,executorch",
        quantize="none,fp16,int8",
        split="test",
        verify_images=2000,
        calibration_images=200,
        out=tmp_path / "export",
        codegen=False,
        isolate=False,  # numbers, not crash isolation (test_isolation)
    )
    fp32: dict[str, Any] = {
        r.format: r for r in results if r.precision == "fp32" and r.variant != "neuralnetwork"
    }
    assert fp32["onnx"].val_accuracy > 0.6  # trained: int8 rounding can cost accuracy
    checked = 0
    for r in results:
        base = fp32[r.format]
        if r.format == "coreml":
            assert r.status == "unverified" or r.status == "ok", r.error
        else:
            assert r.status == "ok", f"{r.format} {r.precision}: {r.error}"
        if r.precision == "fp16" and r.status == "ok":
            assert r.top1_agreement >= 0.995, r
            checked += 1
        if r.precision.startswith("int8"):
            # Per-channel scales, int32 biases (and TFLite's int64 zero points) keep it above
            # 0.25x; see the README, "Export" for the breakdown.
            assert r.size_bytes <= 0.3 * base.size_bytes, (r.format, r.size_bytes / base.size_bytes)
            if r.status == "ok":
                assert r.val_accuracy >= base.val_accuracy - 0.01, (r.format, r.precision)
                checked += 1
    # fp16: onnx, tflite, executorch; int8: onnx; tflite int8_dynamic and int8; executorch
    assert checked == 7
