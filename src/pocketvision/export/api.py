"""``export_run``: one trained run to every mobile format, each file checked against PyTorch."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pocketvision.console import captured
from pocketvision.errors import PocketvisionError
from pocketvision.export.common import ExportContext, ExportResult, VerifySet, mobile_form
from pocketvision.export.formats import BY_NAME, FORMATS, QUANTIZE, installed
from pocketvision.files import write_json
from pocketvision.preprocess import normalize
from pocketvision.rundir import LABELS, PREPROCESSING, LoadedRun, load_run, write_labels

REPORT = "export_report.json"
SUMMARY = "export_summary.json"


@dataclass
class ExportReport:
    """What :func:`export_run` did: one :class:`ExportResult` per file, and the check's set-up.

    Iterating it gives the results. ``export_report.json`` holds ``results`` and
    ``export_summary.json`` the rest.
    """

    folder: Path
    run: str
    model: str
    split: str
    verify_images: int
    calibration_images: int
    threads: int
    pytorch_accuracy: float | None
    results: list[ExportResult] = field(default_factory=list)
    seconds: float = 0.0

    def __iter__(self) -> Iterator[ExportResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def failed(self) -> list[ExportResult]:
        return [r for r in self.results if r.status == "failed"]

    def summary(self) -> dict[str, Any]:
        """The content of export_summary.json."""
        return {
            "pytorch_accuracy": self.pytorch_accuracy,
            "run": self.run,
            "model": self.model,
            "split": self.split,
            "verify_images": self.verify_images,
            "calibration_images": self.calibration_images,
            "threads": self.threads,
            "seconds": self.seconds,
        }


def parse_list(value: str | Sequence[str] | None, allowed: Sequence[str], what: str) -> list[str]:
    """ "a,b" or ["a", "b"] -> checked list; None -> all of ``allowed``."""
    if value is None:
        return list(allowed)
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [i.strip().lower() for i in items if i.strip()]
    unknown = [i for i in items if i not in allowed]
    if unknown or not items:
        raise PocketvisionError(
            f"unknown {what} {', '.join(unknown) or '(empty)'}; choose from {', '.join(allowed)}"
        )
    return items


def _random_set(run: LoadedRun, n: int, seed: int) -> tuple[np.ndarray, None, np.ndarray, str]:
    generator = np.random.default_rng(seed)
    images = generator.integers(0, 256, size=(n, *run.preprocessing.input_size), dtype=np.uint8)
    return images, None, images, "random"


def verification_images(
    run: LoadedRun, n: int, calibration: int, split: str, seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, str]:
    """(images, labels, calibration images, split name) from the run's data source.

    Uses config.json's "data" through pocketvision.data.load_data; without it (a run made by
    hand, data gone) random images stand in and accuracy is not reported.
    """
    data = (run.config or {}).get("data")
    if not data:
        return _random_set(run, n, seed)
    from pocketvision.data import load_data

    try:
        splits = load_data(str(data), run.preprocessing)
    except PocketvisionError as err:
        # the files still export; the check falls back to random images, and says so
        images, labels, calib, _ = _random_set(run, n, seed)
        return images, labels, calib, f"random (data unavailable: {err})"
    chosen = splits.test if split == "test" else splits.val
    if chosen is None:
        raise PocketvisionError(f"{data}: has no {split} split; use --split val")
    count = min(n, len(chosen))
    images = chosen.images[:count].numpy()
    labels = chosen.labels[:count].numpy()
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(splits.train), generator=generator)[: max(calibration, 1)]
    return images, labels, splits.train.images[pick].numpy(), split


def build_context(
    run: LoadedRun,
    out: Path,
    *,
    verify_images: int,
    calibration_images: int,
    split: str,
    threads: int,
    images: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> ExportContext:
    """Model in export form, verification inputs with PyTorch's logits, calibration set."""
    if images is not None:
        uint8, labels = images
        calib = uint8
        split_name = "given"
    else:
        uint8, labels, calib, split_name = verification_images(
            run, verify_images, calibration_images, split
        )
    prep = run.preprocessing
    if tuple(uint8.shape[1:]) != tuple(prep.input_size):
        raise PocketvisionError(
            f"images are {tuple(uint8.shape[1:])}, the run expects {tuple(prep.input_size)}"
        )
    inputs = normalize(uint8, prep).astype(np.float32)
    with torch.no_grad():
        reference = run.model(torch.from_numpy(inputs)).numpy()
    verify = VerifySet(
        images=uint8,
        inputs=inputs,
        labels=None if labels is None else labels.astype(np.int64),
        reference=reference,
        calibration=normalize(calib[:calibration_images], prep).astype(np.float32),
        split=split_name,
    )
    model = mobile_form(run.model, prep.input_size)
    return ExportContext(run=run, model=model, verify=verify, out=out, threads=threads)


def _choices(
    formats: str | Sequence[str] | None, quantize: str | Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """(formats, precisions) asked for, checked against the formats table."""
    chosen = parse_list(formats, FORMATS, "format")
    if formats is None:  # default: what is installed
        chosen = installed() or list(FORMATS)
    wanted = parse_list(quantize, QUANTIZE, "quantization")
    return chosen, ["fp32" if q == "none" else q for q in wanted]


def export_run(
    run: str | Path,
    *,
    formats: str | Sequence[str] | None = None,
    quantize: str | Sequence[str] | None = None,
    calibration_images: int = 200,
    out: str | Path | None = None,
    verify_images: int = 500,
    split: str = "val",
    threads: int = 1,
    codegen: bool = True,
    images: tuple[np.ndarray, np.ndarray | None] | None = None,
    isolate: bool | None = None,
) -> ExportReport:
    """Export a trained run to mobile formats and check every file against PyTorch.

    Args:
        run: A run directory (see :mod:`pocketvision.rundir`).
        formats: Subset of "onnx", "coreml", "tflite", "executorch"; default: every format
            whose packages are installed.
        quantize: Subset of "none" (fp32), "fp16", "int8"; default all three.
        calibration_images: Training images that set int8 activation ranges.
        out: Output folder (default ``RUN/export``).
        verify_images: Images of ``split`` every file is checked on.
        split: "val" or "test" (the data source's held-out split).
        threads: CPU threads each runtime may use (latency is measured with these).
        codegen: Also write ios/ImageClassifier.swift and android/ImageClassifier.kt.
        images: (uint8 (N, C, H, W), labels or None) to check on instead of the run's data.
        isolate: Run each format's converter in its own process, so that a native crash
            (segfault, abort) fails that format only; None: when more than one format.

    Returns:
        The :class:`ExportReport`: one :class:`ExportResult` per file (also written to
        ``OUT/export_report.json``) and the check's set-up (``OUT/export_summary.json``).

    Raises:
        PocketvisionError: The run has no checkpoint, or an argument is invalid.
    """
    if split not in ("val", "test"):
        raise PocketvisionError(f"unknown split {split!r}; choose val or test")
    if calibration_images < 1 or verify_images < 1:
        raise PocketvisionError("--calibration-images and --verify-images must be >= 1")
    chosen, precisions = _choices(formats, quantize)
    started = time.perf_counter()
    loaded = load_run(run)
    folder = Path(out) if out is not None else loaded.path / "export"
    folder.mkdir(parents=True, exist_ok=True)
    ctx = build_context(
        loaded,
        folder,
        verify_images=verify_images,
        calibration_images=calibration_images,
        split=split,
        threads=threads,
        images=images,
    )
    write_labels(folder / LABELS, loaded.labels)
    shutil.copyfile(loaded.path / PREPROCESSING, folder / PREPROCESSING)

    results = _export_formats(ctx, chosen, precisions, isolate)
    if codegen:
        from pocketvision.export.codegen import generate_apps

        with captured():  # coremltools prints on import
            generate_apps(ctx, results)
    report = _report(ctx, results, started)
    write_json(folder / REPORT, [asdict(r) for r in results])
    write_json(folder / SUMMARY, report.summary())
    return report


def _report(ctx: ExportContext, results: list[ExportResult], started: float) -> ExportReport:
    """The report of ``results``: what was checked, on how many images, and PyTorch's score."""
    torch_acc = None
    if ctx.verify.labels is not None:
        torch_acc = float((ctx.verify.reference.argmax(1) == ctx.verify.labels).mean())
    return ExportReport(
        folder=ctx.out,
        run=str(ctx.run.path),
        model=ctx.run.spec.name,
        split=ctx.verify.split,
        verify_images=len(ctx.verify.inputs),
        calibration_images=len(ctx.verify.calibration),
        threads=ctx.threads,
        pytorch_accuracy=torch_acc,
        results=results,
        seconds=round(time.perf_counter() - started, 3),
    )


def _export_formats(
    ctx: ExportContext, chosen: Sequence[str], precisions: Sequence[str], isolate: bool | None
) -> list[ExportResult]:
    """Every chosen format's files, each converter's own output captured (see console);
    each format in its own process when ``isolate`` (None: when there are several)."""
    from pocketvision.export.isolate import run_format, run_isolated

    separate = len(chosen) > 1 if isolate is None else isolate
    results: list[ExportResult] = []
    previous = torch.get_num_threads()
    torch.set_num_threads(ctx.threads)
    try:
        for fmt in chosen:
            # a format whose package is missing here fails at once, in this process: there
            # is no converter to crash, and a child would not see what this process sees
            alone = separate and not BY_NAME[fmt].missing()
            results += (run_isolated if alone else run_format)(fmt, ctx, precisions)
    finally:
        torch.set_num_threads(previous)
    fp32 = {r.format: r for r in results if r.precision == "fp32" and r.variant != "neuralnetwork"}
    for entry in results:
        base = fp32.get(entry.format)
        if entry.size_bytes and base is not None and base.size_bytes and entry is not base:
            entry.notes.append(f"size {entry.size_bytes / base.size_bytes:.2f}x fp32")
    return results


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(
    results: ExportReport | Sequence[ExportResult], pytorch_accuracy: float | None = None
) -> str:
    """The report as a fixed-width text table (what the CLI prints)."""
    if isinstance(results, ExportReport) and pytorch_accuracy is None:
        pytorch_accuracy = results.pytorch_accuracy
    header = ("format", "precision", "size", "max|diff|", "top-1 agree", "accuracy", "ms", "status")
    rows = [header]
    for r in results:
        name = r.format + (f" ({r.variant})" if r.variant and r.format == "coreml" else "")
        size = "-" if r.size_bytes is None else f"{r.size_bytes / 1024:.0f} KiB"
        rows.append(
            (
                name,
                r.precision,
                size,
                _fmt(r.max_abs_diff, ".2e"),
                "-" if r.top1_agreement is None else f"{100 * r.top1_agreement:.2f}%",
                "-" if r.val_accuracy is None else f"{100 * r.val_accuracy:.2f}%",
                _fmt(r.latency_ms, ".3f"),
                r.status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if pytorch_accuracy is not None:
        lines.append(f"PyTorch accuracy on the same images: {100 * pytorch_accuracy:.2f}%")
    for r in results:
        if r.error and r.status != "ok":
            lines.append(f"{r.format} {r.precision}: {r.status}: {r.error}")
    return "\n".join(lines)
