"""fp32, post-training int8 and QAT int8 accuracy on the test split, per family (issue 18).

For each model: train fp32 on Fashion-MNIST (``--recipe``: the library's defaults or the
demo's), export the full int8 .tflite calibrated on training images (post-training
quantisation), fine-tune with ``train --qat`` and export its int8 .tflite from the trained
graph; every accuracy is measured on the same test images (the
int8 ones in the LiteRT interpreter, batch 1, as on a phone). The target: wherever
post-training int8 loses more than 0.5 pt, QAT wins back at least half of that loss.
``qat_fp32_accuracy`` is the QAT run's own fp32 accuracy: when it rises well above the
source's, the source had not converged and QAT's gain is training, not recovered rounding.

    python benchmarks/qat.py                                   # 3 families, ~20 min on 2 cores
    python benchmarks/qat.py --recipe demo --epochs 5 --test-images 5000 \
        --out benchmarks/results/qat_demo_recipe.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from pocketvision.environment import environment
from pocketvision.files import write_json

RESULTS = Path(__file__).resolve().parent / "results"
# depthwise at low width, an inverted-residual net at low width, hard-swish and SE
MODELS = "mobilenet_v1_025,mobilenet_v2_035,mobilenet_v3_small_075"
# the fp32 recipe: the library's defaults, or the demo's (pocketvision.demo)
RECIPES: dict[str, dict[str, Any]] = {
    "default": {},
    "demo": {"augment": "flip", "label_smoothing": 0.0, "lr": 0.2},
}


def _int8_accuracy(run: Path, images: int, out: Path) -> tuple[float, float]:
    """(int8 .tflite accuracy, PyTorch accuracy) on the first ``images`` test images."""
    from pocketvision.export import export_run

    report = export_run(
        run,
        formats="tflite",
        quantize="int8",
        split="test",
        verify_images=images,
        calibration_images=200,
        out=out,
        isolate=False,
        codegen=False,
    )
    int8 = next(r for r in report.results if r.precision == "int8")
    if int8.status != "ok" or int8.val_accuracy is None:
        raise RuntimeError(f"{run}: int8 export failed: {int8.error}")
    assert report.pytorch_accuracy is not None
    return int8.val_accuracy, report.pytorch_accuracy


def measure(model: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from pocketvision.train import TrainConfig, train

    source = root / model
    started = time.perf_counter()
    train(
        TrainConfig(
            data="fashion-mnist",
            model=model,
            train_limit=args.train_limit,
            epochs=args.epochs,
            **RECIPES[args.recipe],
            out=str(source),
            quiet=True,
            seed=args.seed,
            checkpoint_seconds=1e9,
        )
    )
    train_s = time.perf_counter() - started
    ptq, fp32 = _int8_accuracy(source, args.test_images, root / f"{model}-ptq")
    started = time.perf_counter()
    summary = train(
        TrainConfig(
            qat=str(source), qat_epochs=args.qat_epochs, out=str(root / f"{model}-qat"), quiet=True
        )
    )
    qat_s = time.perf_counter() - started
    qat, qat_fp32 = _int8_accuracy(Path(summary["run_dir"]), args.test_images, root / "qat-x")
    drop = fp32 - ptq
    recovered = None if drop <= 0 else (qat - ptq) / drop
    row = {
        "model": model,
        "fp32_accuracy": round(fp32, 5),
        "ptq_int8_accuracy": round(ptq, 5),
        "qat_int8_accuracy": round(qat, 5),
        "qat_fp32_accuracy": round(qat_fp32, 5),
        "ptq_drop_pt": round(100 * drop, 2),
        "qat_drop_pt": round(100 * (fp32 - qat), 2),
        "recovered_share": None if recovered is None else round(recovered, 3),
        # binomial standard error of one accuracy on these images: the noise in each figure
        "accuracy_se_pt": round(100 * (fp32 * (1 - fp32) / args.test_images) ** 0.5, 2),
        "target_met": drop <= 0.005 or (recovered is not None and recovered >= 0.5),
        "train_seconds": round(train_s, 1),
        "qat_seconds": round(qat_s, 1),
    }
    print(
        f"{model}: fp32 {100 * fp32:.2f}%  PTQ int8 {100 * ptq:.2f}%  QAT int8 {100 * qat:.2f}%"
        f"  (PTQ drop {row['ptq_drop_pt']:.2f} pt, recovered {row['recovered_share']})",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--train-limit", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="default")
    parser.add_argument("--out", type=Path, default=RESULTS / "qat.json")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(m.strip(), args, Path(tmp)) for m in args.models.split(",")]
    result = {
        "benchmark": "qat",
        "data": "fashion-mnist (28 px, grayscale)",
        "train_limit": args.train_limit,
        "epochs": args.epochs,
        "qat_epochs": args.qat_epochs,
        "test_images": args.test_images,
        "seed": args.seed,
        "recipe": args.recipe,
        "runtime": "LiteRT interpreter, full int8 .tflite, batch 1",
        "rows": rows,
        "all_targets_met": all(r["target_met"] for r in rows),
        "seconds": round(time.perf_counter() - started, 1),
        "environment": environment(),
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
