"""A converter that segfaults costs its own format only: the others are written and checked.

The crash is real: ``POCKETVISION_FAULT=export:executorch`` makes the ExecuTorch converter's
process read address 0 (see pocketvision.faults)."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_support import make_run

from pocketvision.export import export_run
from pocketvision.faults import ENV


def test_segfault_in_one_converter_fails_that_format_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(tmp_path, "lenet5", data=None)
    monkeypatch.setenv(ENV, "export:executorch")  # inherited by the spawned converter
    report = export_run(
        run, formats="onnx,executorch", quantize="none", verify_images=32, codegen=False
    )
    rows = {r.format: r for r in report}
    assert rows["executorch"].status == "failed"
    assert rows["executorch"].error == "converter killed by SIGSEGV"
    assert rows["onnx"].status == "ok" and (report.folder / "onnx" / "model.onnx").is_file()
    assert rows["onnx"].top1_agreement == 1.0
    assert (report.folder / "export_report.json").is_file()  # we lived to write the report
