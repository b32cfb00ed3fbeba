"""A converter that segfaults costs its own format only: the others are written and checked.

The crash is real: ``POCKETVISION_FAULT=export:executorch`` makes the ExecuTorch converter's
process read address 0 (see pocketvision.faults). The export runs from a user's script that
has no ``if __name__ == "__main__"`` guard, as many do: nothing of it may run again in the
converters' processes (multiprocessing's spawn would re-import it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from export_support import make_run

from pocketvision.faults import ENV

SRC = Path(__file__).resolve().parents[2] / "src"

SCRIPT = """\
import json, sys
from pocketvision.export import export_run

with open(sys.argv[2], "a") as marker:  # counts how often this script runs
    marker.write("ran\\n")
report = export_run(
    sys.argv[1], formats="onnx,executorch", quantize="none", verify_images=32, codegen=False
)
print(json.dumps([[r.format, r.status, r.error, r.top1_agreement] for r in report]))
print(report.folder)
"""


def test_segfault_in_one_converter_fails_that_format_only(tmp_path: Path) -> None:
    run = make_run(tmp_path, "lenet5", data=None)
    script, marker = tmp_path / "export_it.py", tmp_path / "runs.txt"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "PYTHONPATH": str(SRC), ENV: "export:executorch"}  # the child inherits
    done = subprocess.run(
        [sys.executable, str(script), str(run), str(marker)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows_line, folder = done.stdout.strip().splitlines()[-2:]
    rows = {fmt: (status, error, top1) for fmt, status, error, top1 in json.loads(rows_line)}
    assert rows["executorch"][:2] == ("failed", "converter killed by SIGSEGV")
    assert rows["onnx"] == ("ok", None, 1.0)
    assert (Path(folder) / "onnx" / "model.onnx").is_file()
    assert (Path(folder) / "export_report.json").is_file()  # we lived to write the report
    assert marker.read_text() == "ran\n"  # the script ran once, not again in each converter
