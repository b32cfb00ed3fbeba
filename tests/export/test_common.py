"""Export plumbing that needs no converter: pools rewritten for mobile delegates, argument
parsing, missing packages, converter errors that name the op and the layer, CLI errors."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from export_support import make_run
from torch import nn

from pocketvision.cli import main
from pocketvision.errors import PocketvisionError
from pocketvision.export import export_run, format_table
from pocketvision.export.api import build_context, parse_list
from pocketvision.export.common import ExportContext
from pocketvision.mobile import _fixed_pool, mobile_form
from pocketvision.preprocess import Preprocessing
from pocketvision.rundir import BEST, LoadedRun, ModelSpec


@pytest.mark.parametrize("pool", [nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d])
@pytest.mark.parametrize(
    ("size", "out"), [(6, 5), (7, 3), (8, 4), (10, 3), (5, 5), (9, 1), (4, (2, 1)), (6, (None, 3))]
)
def test_fixed_pool_equals_adaptive_pool(pool: type[nn.Module], size: int, out: object) -> None:
    adaptive = pool(out)
    fixed = _fixed_pool(adaptive, (size, size))
    assert fixed is not None
    x = torch.randn(2, 3, size, size)
    torch.testing.assert_close(fixed(x), adaptive(x), rtol=0, atol=1e-6)
    assert not any(
        isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d) for m in fixed.modules()
    )


def test_uneven_adaptive_pool_is_left_alone() -> None:
    # 7 -> 5 has bins of length 2 and 3: no fixed pool computes it
    assert _fixed_pool(nn.AdaptiveAvgPool2d(5), (7, 7)) is None


def test_mobile_form_computes_the_same_function() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(5), nn.AdaptiveMaxPool2d(1), nn.Flatten()
    ).eval()
    mobile = mobile_form(model, (1, 8, 8))
    kinds = [type(m).__name__ for m in mobile]
    assert kinds == ["Conv2d", "AvgPool2d", "GlobalMaxPool", "Flatten"]
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(mobile(x), model(x))
    assert isinstance(model[1], nn.AdaptiveAvgPool2d)  # the original is untouched


def test_parse_list() -> None:
    assert parse_list("ONNX, tflite", ("onnx", "tflite"), "format") == ["onnx", "tflite"]
    assert parse_list(None, ("a", "b"), "x") == ["a", "b"]
    with pytest.raises(PocketvisionError, match="unknown format caffe; choose from onnx"):
        parse_list("onnx,caffe", ("onnx", "tflite"), "format")


def test_run_without_checkpoint_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path, "lenet5", data=None)
    (run / BEST).unlink()
    assert main(["export", str(run), "--format", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "best.safetensors: no checkpoint" in err


def test_unknown_format_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path, "lenet5", data=None)
    assert main(["export", str(run), "--format", "caffe2"]) == 2
    assert "unknown format caffe2" in capsys.readouterr().err


def test_missing_package_fails_only_its_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(tmp_path, "lenet5", data=None)
    monkeypatch.setitem(sys.modules, "coremltools", None)  # as if it were not installed
    results = export_run(
        run, formats="coreml,onnx", quantize="none", verify_images=20, codegen=False
    )
    coreml = [r for r in results if r.format == "coreml"]
    assert coreml and all(r.status == "failed" for r in coreml)
    assert all("coremltools" in r.error and "pocketvision[export]" in r.error for r in coreml)
    onnx = next(r for r in results if r.format == "onnx")
    assert onnx.status == "ok" and onnx.max_abs_diff is not None and onnx.max_abs_diff <= 1e-4
    # without data the check runs on random images and reports no accuracy
    assert onnx.val_accuracy is None
    table = format_table(results)
    assert "coreml fp32: failed: coreml export needs coremltools" in table


class Determinant(nn.Module):
    """An op no mobile converter here implements (aten.linalg_det)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.det(x[:, 0, :4, :4])[:, None].expand(-1, 3)


class Unconvertible(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.odd = Determinant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.odd(self.conv(x))


def _custom_context(tmp_path: Path, model: nn.Module, size: int, count: int) -> ExportContext:
    """An export context for an unregistered 1-channel, 3-class model on random images."""
    prep = Preprocessing((1, size, size), (0.5,), (0.5,))
    run = LoadedRun(tmp_path, model.eval(), ModelSpec("custom", {}), ["a", "b", "c"], prep)
    images = np.random.default_rng(0).integers(0, 256, (count, 1, size, size), dtype=np.uint8)
    return build_context(
        run,
        tmp_path / "out",
        verify_images=count,
        calibration_images=4,
        split="val",
        threads=1,
        images=(images, None),
    )


def test_converter_failure_names_op_and_layer_and_others_continue(tmp_path: Path) -> None:
    from pocketvision.export import coreml_export, onnx_export

    ctx = _custom_context(tmp_path, Unconvertible(), size=8, count=16)
    (coreml,) = [r for r in coreml_export.export(ctx, ["fp32"]) if r.variant == "mlprogram"]
    assert coreml.status == "failed"
    assert coreml.error is not None
    assert coreml.error.startswith("op linalg_det in layer odd (Determinant)")
    (onnx,) = onnx_export.export(ctx, ["fp32"])  # ONNX has Det: this format still works
    assert onnx.status == "ok" and onnx.max_abs_diff is not None and onnx.max_abs_diff <= 1e-4


def test_cli_prints_the_table_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pocketvision.export import isolate

    def no_child(*args: object) -> None:
        raise AssertionError("--no-isolate started a converter process")

    monkeypatch.setattr(isolate, "run_isolated", no_child)
    run = make_run(tmp_path, "lenet5")
    out = tmp_path / "exported"
    code = main(
        [
            "export",
            str(run),
            "--format",
            "onnx,coreml",
            "--no-isolate",
            "--quantize",
            "none,int8",
            "--verify-images",
            "100",
            "--calibration-images",
            "50",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert re.search(r"^onnx +fp32 ", printed, re.M) and re.search(r"^onnx +int8 ", printed, re.M)
    assert "checked on 100 val images" in printed
    assert (out / "export_report.json").exists() and (out / "onnx" / "model_int8.onnx").exists()
    assert (out / "coreml" / "Model.mlpackage").exists() and (out / "ios").exists()


def test_rgb_run_with_per_channel_std(tmp_path: Path) -> None:
    """ImageNet's three stds cannot fold into Core ML's one image scale: the model divides."""
    import coremltools as ct
    from ai_edge_litert.interpreter import Interpreter

    from pocketvision.export.coreml_export import inspect_spec

    run = make_run(tmp_path, "lenet5", rgb=True, data=None)
    results = export_run(
        run, formats="coreml,tflite", quantize="none", verify_images=50, isolate=False
    )
    tflite = next(r for r in results if r.format == "tflite")
    assert tflite.status == "ok" and tflite.max_abs_diff <= 1e-4 and tflite.top1_agreement == 1
    out = run / "export"
    assert list(Interpreter(model_path=str(out / tflite.path)).get_input_details()[0]["shape"]) == [
        1,
        32,
        32,
        3,
    ]
    info = inspect_spec(ct.utils.load_spec(str(out / "coreml" / "Model.mlpackage")))
    assert info["color"] == "RGB"
    assert info["scale"] == pytest.approx(1 / 255) and info["bias"] == [0.0, 0.0, 0.0]
    kotlin = (out / "android" / "ImageClassifier.kt").read_text()
    assert "const val CHANNELS = 3" in kotlin and "0.229f, 0.224f, 0.225f" in kotlin
    swift = (out / "ios" / "ImageClassifier.swift").read_text()
    assert "isGrayscale = false" in swift


def test_padded_average_pool_becomes_pad_and_pool() -> None:
    # ShuffleNet's stride-2 shortcut: XNNPACK rejects padding inside an averaging pool
    model = nn.Sequential(nn.AvgPool2d(3, 2, 1), nn.AvgPool2d(3, 1, 1, count_include_pad=False))
    mobile = mobile_form(model.eval(), (2, 9, 9))
    assert isinstance(mobile[0], nn.Sequential) and isinstance(mobile[0][0], nn.ZeroPad2d)
    assert isinstance(mobile[1], nn.AvgPool2d)  # excluding the padding: left as it is
    x = torch.randn(2, 2, 9, 9)
    torch.testing.assert_close(mobile(x), model(x), rtol=0, atol=1e-6)


class UnevenPool(nn.Module):
    """7x7 -> 5x5 adaptive pooling: bins of 2 and 3 pixels, which no fixed pool reproduces."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(5)
        self.fc = nn.Linear(100, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv(x)).flatten(1))


def test_executorch_reports_ops_left_outside_xnnpack(tmp_path: Path) -> None:
    from pocketvision.export import executorch_export

    ctx = _custom_context(tmp_path, UnevenPool(), size=7, count=20)
    (entry,) = executorch_export.export(ctx, ["fp32"])
    assert entry.status == "ok" and entry.max_abs_diff is not None and entry.max_abs_diff <= 1e-4
    assert entry.notes == ["not delegated to XNNPACK: _adaptive_avg_pool2d.out x1"]


def test_readme_formats_table_is_generated_from_the_table() -> None:
    from pocketvision.export import formats

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("<!-- formats-table:start")[1].split("<!-- formats-table:end -->")[0]
    assert block.split("-->\n", 1)[1].strip() == formats.markdown_table()
    assert formats.FORMATS == ("onnx", "coreml", "tflite", "executorch")
