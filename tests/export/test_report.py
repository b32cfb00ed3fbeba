"""What one export writes: the report, labels, metadata inside each file, the printed table."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pocketvision.export import REPORT, format_table

# one worker builds the shared lenet export (session fixture) under `pytest -n 2 --dist loadgroup`
pytestmark = pytest.mark.xdist_group("export_lenet")

KEYS = {
    "format",
    "precision",
    "path",
    "size_bytes",
    "max_abs_diff",
    "top1_agreement",
    "val_accuracy",
    "latency_ms",
    "status",
    "error",
}


def test_report_lists_every_file(lenet_export: tuple[Path, list[Any]]) -> None:
    out, results = lenet_export
    report = json.loads((out / REPORT).read_text())
    assert len(report) == len(results) == 5
    assert {(e["format"], e.get("variant")) for e in report} == {
        ("onnx", None),
        ("tflite", None),
        ("executorch", "xnnpack"),
        ("coreml", "mlprogram"),
        ("coreml", "neuralnetwork"),
    }
    for entry in report:
        assert set(entry) >= KEYS
        assert (out / entry["path"]).exists()
        assert entry["size_bytes"] > 0
        if entry["format"] == "coreml":
            assert entry["status"] == "unverified"
            assert "only on macOS" in entry["error"]
        else:
            assert entry["status"] == "ok" and entry["error"] is None
            assert entry["max_abs_diff"] <= 1e-4 and entry["top1_agreement"] == 1.0
    summary = json.loads((out / "export_summary.json").read_text())
    assert summary["verify_images"] == 500 and summary["split"] == "val"
    # every runtime scores the same images as PyTorch with the same answers
    accuracies = {e["val_accuracy"] for e in report if e["status"] == "ok"}
    assert accuracies == {summary["pytorch_accuracy"]}
    assert (out / "labels.txt").read_text().splitlines()[-1] == "Ankle boot"
    assert json.loads((out / "preprocessing.json").read_text())["input_size"] == [1, 32, 32]


def test_onnx_file_is_self_contained_with_metadata(lenet_export: tuple[Path, list[Any]]) -> None:
    import onnx
    import onnxruntime as ort

    out, _ = lenet_export
    path = out / "onnx" / "model.onnx"
    assert [p.name for p in path.parent.iterdir()] == ["model.onnx"]  # no external .data
    model = onnx.load(str(path))
    assert model.opset_import[0].version >= 18
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["labels"])[0] == "T-shirt/top"
    assert json.loads(meta["mean"]) == [0.286] and json.loads(meta["std"]) == [0.353]
    assert json.loads(meta["input_size"]) == [1, 32, 32]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"  # dynamic batch
    for batch in (1, 7):
        logits = session.run(None, {"image": np.zeros((batch, 1, 32, 32), np.float32)})[0]
        assert logits.shape == (batch, 10)


def test_tflite_carries_labels(lenet_export: tuple[Path, list[Any]]) -> None:
    out, _ = lenet_export
    with zipfile.ZipFile(out / "tflite" / "model_fp32.tflite") as archive:
        assert archive.read("labels.txt").decode() == (out / "labels.txt").read_text()


def test_core_ml_spec_and_metadata(lenet_export: tuple[Path, list[Any]]) -> None:
    import coremltools as ct

    from pocketvision.export.coreml_export import inspect_spec

    out, _ = lenet_export
    for name, version in (("Model.mlpackage", 6), ("Model.mlmodel", 4)):
        info = inspect_spec(ct.utils.load_spec(str(out / "coreml" / name)))
        assert info["spec_version"] == version
        assert info["input_type"] == "imageType" and info["color"] == "grayscale"
        assert (info["width"], info["height"]) == (32, 32)
        assert info["scale"] == pytest.approx(1 / (255 * 0.353), rel=1e-6)
        assert info["bias"] == pytest.approx([-0.286 / 0.353], rel=1e-6)
        assert info["labels"][0] == "T-shirt/top" and len(info["labels"]) == 10
        assert info["ends_in_softmax"]
        assert info["author"] == "pocketvision"
        assert info["metadata"]["com.pocketvision.model"] == "lenet5"


@pytest.mark.macos
def test_core_ml_predictions_match_pytorch(lenet_export: tuple[Path, list[Any]]) -> None:
    from pocketvision.export.coreml_export import can_predict

    if not can_predict():
        pytest.skip("Core ML predictions need macOS")
    _, results = lenet_export
    for r in results:
        if r.format == "coreml" and r.precision == "fp32":
            assert r.status == "ok"
            assert r.max_abs_diff <= 1e-4 and r.top1_agreement == 1.0


def test_printed_table(lenet_export: tuple[Path, list[Any]]) -> None:
    _, results = lenet_export
    table = format_table(results, pytorch_accuracy=0.5)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["format", "precision", "size"]
    assert any(line.startswith("executorch") and line.rstrip().endswith("ok") for line in lines)
    assert "PyTorch accuracy on the same images: 50.00%" in table
    assert "coreml fp32: unverified: spec checked" in table
