"""fp16 ONNX and ExecuTorch files run in their own runtimes and agree with PyTorch.

Both take and return float32, so an app feeds them what it feeds the fp32 file. The ONNX file
is half the size of fp32; the ExecuTorch file is not (its XNNPACK serializer keeps
convolution weights in float32), which is measured here rather than assumed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from export_support import make_run

from pocketvision import create_model
from pocketvision.export import export_run
from pocketvision.export.agreement import agreement


def _lenet() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("lenet5", in_chans=1, num_classes=10).eval()


def test_onnx_fp16_runs_in_onnxruntime_at_half_the_size(tmp_path: Path) -> None:
    import onnx

    from pocketvision.export.onnx_export import run_session, session, to_onnx

    model = _lenet()
    x = torch.randn(64, 1, 32, 32)
    with torch.no_grad():
        reference = model(x).numpy()
    fp32 = to_onnx(model, x[:1], tmp_path / "m.onnx", metadata={"model": "lenet5"})
    fp16 = to_onnx(model, x[:1], tmp_path / "m16.onnx", precision="fp16", metadata={"a": "b"})
    proto = onnx.load(str(fp16))
    weights = {onnx.TensorProto.DataType.Name(t.data_type) for t in proto.graph.initializer}
    assert "FLOAT" not in weights and "FLOAT16" in weights
    assert {p.key: p.value for p in proto.metadata_props} == {"a": "b"}
    sess = session(fp16)
    assert [i.type for i in sess.get_inputs()] == ["tensor(float)"]  # the app feeds float32
    half = agreement(reference, run_session(sess, x.numpy()))
    assert half.top1_agreement == 1.0 and half.within(1e-2)
    assert not half.within(1e-6)  # really rounded to fp16
    assert 0.45 < fp16.stat().st_size / fp32.stat().st_size < 0.55


def test_executorch_fp16_runs_in_xnnpack_with_float32_ends(tmp_path: Path) -> None:
    from pocketvision.export.executorch_export import load_method, to_pte

    model = _lenet()
    x = torch.randn(16, 1, 32, 32)
    with torch.no_grad():
        reference = model(x).numpy()
    fp32 = to_pte(model, x[:1], tmp_path / "m.pte")
    fp16 = to_pte(model, x[:1], tmp_path / "m16.pte", precision="fp16")
    method = load_method(fp16)
    outputs = [method.execute([image[None].contiguous()])[0] for image in x]
    assert {o.dtype for o in outputs} == {torch.float32}
    half = agreement(reference, np.stack([o.numpy()[0] for o in outputs]))
    assert half.top1_agreement == 1.0 and half.within(1e-2)
    assert not half.within(1e-5)  # computed in fp16, not silently in fp32
    # LeNet's linear layers are stored in fp16, its convolutions (features.7: 48k of 62k
    # weights) in fp32 by ExecuTorch's XNNPACK serializer
    assert 0.85 < fp16.stat().st_size / fp32.stat().st_size < 0.95


def test_export_run_writes_and_checks_fp16_files(tmp_path: Path) -> None:
    torch.manual_seed(0)  # make_run's weights: random, untrained, so near-tied logits
    run = make_run(tmp_path, "lenet5")
    results = export_run(
        run,
        formats="onnx,executorch",
        quantize="none,fp16",
        verify_images=200,
        codegen=False,
        isolate=False,
    )
    fp16 = {r.format: r for r in results if r.precision == "fp16"}
    assert fp16["onnx"].path == "onnx/model_fp16.onnx"
    assert fp16["executorch"].path == "executorch/model_xnnpack_fp16.pte"
    for r in fp16.values():
        assert r.status == "ok", r.error
        # fp16 rounding, no more (logits here reach ~0.1): at most 2 of 200 near-ties flip
        assert r.max_abs_diff is not None and 1e-6 < r.max_abs_diff < 5e-3, r.max_abs_diff
        assert r.top1_agreement is not None and r.top1_agreement >= 0.99
        assert any(note.startswith("size 0.") for note in r.notes), r.notes
    assert fp16["executorch"].notes[0].startswith("whole graph delegated to XNNPACK but")
