"""App code for the exported models: Swift (Core ML + Vision) and Kotlin (LiteRT)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pocketvision.export.common import ExportContext, ExportResult
from pocketvision.files import write_atomic


def generate_apps(ctx: ExportContext, results: Sequence[ExportResult]) -> list[Path]:
    """Write ios/ and android/ code for the fp32 Core ML and LiteRT files that were exported.

    Names come from the saved files themselves (the Core ML spec, the LiteRT signature), so
    the code matches what was written, not what the exporter meant to write.
    """
    written: list[Path] = []
    by_key = {(r.format, r.precision, r.variant): r for r in results}
    coreml = by_key.get(("coreml", "fp32", "mlprogram"))
    if coreml is not None and coreml.status in ("ok", "unverified") and coreml.path:
        import coremltools as ct

        from pocketvision.export.codegen import swift
        from pocketvision.export.coreml_export import MIN_IOS, folded_normalisation, inspect_spec

        info = inspect_spec(ct.utils.load_spec(str(ctx.out / coreml.path)))
        scale, _ = folded_normalisation(ctx.prep.mean, ctx.prep.std)
        source, readme = swift.render(
            model=ctx.run.spec.name,
            model_file=Path(coreml.path).name,
            input_name=info["inputs"][0],
            label_name=info["label_name"],
            probs_name=info["probabilities_name"],
            width=info["width"],
            height=info["height"],
            grayscale=info["color"] == "grayscale",
            scale=scale,
            mean=ctx.prep.mean,
            std=ctx.prep.std,
            num_classes=len(info["labels"]),
            min_ios=MIN_IOS["mlprogram"],
        )
        written += _write(ctx.out / "ios", source, readme, "ImageClassifier.swift")
    tflite = by_key.get(("tflite", "fp32", None))
    if tflite is not None and tflite.status == "ok" and tflite.path:
        from pocketvision.export.codegen import kotlin
        from pocketvision.export.tflite_export import tensor_names

        source, readme = kotlin.render(
            model=ctx.run.spec.name,
            model_file=Path(tflite.path).name,
            names=tensor_names(ctx.out / tflite.path),
            input_size=ctx.prep.input_size,
            mean=ctx.prep.mean,
            std=ctx.prep.std,
            num_classes=len(ctx.labels),
        )
        written += _write(ctx.out / "android", source, readme, "ImageClassifier.kt")
    return written


def _write(folder: Path, source: str, readme: str, name: str) -> list[Path]:
    write_atomic(folder / name, source)
    write_atomic(folder / "README.md", readme)
    return [folder / name, folder / "README.md"]
