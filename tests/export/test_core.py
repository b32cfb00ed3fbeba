"""The model-level core converts a bare module (no run folder): what profile and web call."""

from __future__ import annotations

from pathlib import Path

import torch

from pocketvision import create_model
from pocketvision.export.agreement import agreement


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("lenet5", in_chans=1, num_classes=10).eval()


def test_to_onnx_int8_and_fp32_agree_with_pytorch(tmp_path: Path) -> None:
    from pocketvision.export.onnx_export import run_session, session, to_onnx

    model = _model()
    x = torch.randn(16, 1, 32, 32)
    with torch.no_grad():
        reference = model(x).numpy()
    fp32 = to_onnx(model, x[:1], tmp_path / "m.onnx")
    int8 = to_onnx(model, x[:1], tmp_path / "m8.onnx", precision="int8", calibration=x.numpy())
    exact = agreement(reference, run_session(session(fp32), x.numpy()))
    rounded = agreement(reference, run_session(session(int8), x.numpy()))
    assert exact.within(1e-4) and exact.top1_agreement == 1.0
    assert not rounded.within(1e-6)  # really quantized, and still close
    assert rounded.within(0.2) and int8.stat().st_size < 0.5 * fp32.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m8.onnx"]


def test_to_coreml_labels_default_to_class_indices(tmp_path: Path) -> None:
    import coremltools as ct

    from pocketvision.export.coreml_export import inspect_spec, to_coreml

    path = to_coreml(_model(), torch.randn(1, 1, 32, 32), tmp_path / "Model.mlpackage")
    info = inspect_spec(ct.utils.load_spec(str(path)))
    assert info["labels"] == [str(i) for i in range(10)]
    assert abs(info["scale"] - 1 / 255) < 1e-7 and info["bias"] == [0.0]
    assert info["metadata"]["com.pocketvision.model"] == "LeNet"
