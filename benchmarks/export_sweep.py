"""Every format at every precision for one model per family, with the ops each file runs.

For each family's representative (by default the four families after 2018: MobileNetV3,
EfficientNet-Lite, MobileNetV4, MobileOne; ``--all``: every family) a run folder is made as
the export tests make it (32 px Fashion-MNIST, 10 classes, random weights with BatchNorm
statistics measured on real images, so logits spread like a trained model's) and exported by
``pocketvision.export.export_run`` to ONNX, LiteRT, ExecuTorch and Core ML at fp32, fp16 and
int8, each file checked against PyTorch on 500 validation images in its own runtime (Core ML:
spec only off macOS). Besides the check, it records which ops each file asks its runtime for:
the ONNX graph's and the LiteRT file's op types (hard-swish must stay HARD_SWISH, which XNNPACK runs), the Core ML
program's MIL op types, and ExecuTorch's ops left outside the XNNPACK delegate (issue 13).

    python benchmarks/export_sweep.py                 # ~10 min on 2 cores
    python benchmarks/export_sweep.py --all --out /tmp/sweep.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
NEW_FAMILIES = ("MobileNetV3", "EfficientNetLite", "MobileNetV4", "MobileOne")
SIZE = 32
# shrinks of tests/export/test_formats.py for models that take minutes to convert
SMALL_KWARGS: dict[str, dict[str, Any]] = {
    "nasnet_a_mobile": {"num_cells": 1, "penultimate_filters": 192}
}


def representatives(families: tuple[str, ...] | None) -> list[str]:
    """The registered model with the fewest published parameters in each family."""
    from pocketvision import list_models, model_info

    best: dict[str, str] = {}
    for name in list_models():
        family = model_info(name).family
        if families is not None and family not in families:
            continue
        if family not in best or model_info(name).params < model_info(best[family]).params:
            best[family] = name
    return sorted(best.values())


def tflite_ops(path: Path) -> dict[str, int]:
    from pocketvision.export.tflite_export import interpreter

    ops = interpreter(path)._get_ops_details()
    return dict(Counter(o["op_name"] for o in ops if o["op_name"] != "DELEGATE"))


def onnx_ops(path: Path) -> dict[str, int]:
    import onnx

    return dict(Counter(node.op_type for node in onnx.load(str(path)).graph.node))


def coreml_ops(path: Path) -> dict[str, int] | None:
    import coremltools as ct

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        return None
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    return dict(Counter(op.type for op in block.operations))


def sweep_one(name: str, root: Path) -> list[dict[str, Any]]:
    from export_support import make_run

    from pocketvision.console import captured
    from pocketvision.export import export_run

    run = make_run(root, name, size=SIZE, kwargs=SMALL_KWARGS.get(name))
    report = export_run(run, quantize="none,fp16,int8", verify_images=500, codegen=False)
    rows = []
    for r in report.results:
        row = {"model": name, **asdict(r)}
        path = run / "export" / r.path if r.path else None
        with captured():
            if path is not None and path.exists() and r.format == "tflite":
                row["ops"] = tflite_ops(path)
            if path is not None and path.exists() and r.format == "onnx":
                row["ops"] = onnx_ops(path)
            if path is not None and path.exists() and r.format == "coreml":
                row["ops"] = coreml_ops(path)
        rows.append(row)
        print(
            f"{name} {r.format} {r.precision} {r.variant or ''}: {r.status} "
            f"diff {r.max_abs_diff} agree {r.top1_agreement} {'; '.join(r.notes)} {r.error or ''}",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every family, not only the new")
    parser.add_argument("--models", help="comma-separated names instead of representatives")
    parser.add_argument("--out", type=Path, default=RESULTS / "export_sweep.json")
    args = parser.parse_args()
    from pocketvision.environment import environment
    from pocketvision.files import write_json

    sys.path.insert(0, str(ROOT / "tests" / "export"))  # the export tests' run maker
    names = (
        args.models.split(",")
        if args.models
        else representatives(None if args.all else NEW_FAMILIES)
    )
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                rows += sweep_one(name, Path(tmp))
            except Exception as err:  # one model failing must not lose the others
                rows.append({"model": name, "error": f"{type(err).__name__}: {err}"[:300]})
    write_json(
        args.out,
        {
            "benchmark": "export_sweep",
            "command": "python benchmarks/export_sweep.py " + " ".join(sys.argv[1:]),
            "input": [1, SIZE, SIZE],
            "models": names,
            "rows": rows,
            "wall_s": round(time.perf_counter() - started, 1),
            "environment": environment(),
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
