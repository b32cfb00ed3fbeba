"""Quantisation-aware training: ``pocketvision train --qat RUN [--qat-epochs N]``.

Fine-tunes a trained run with fake quantisation in the graph the int8 LiteRT export converts
(:mod:`pocketvision.quantize`: the same quantizer, the same NHWC graph of the model's mobile
form), so what is trained is what is shipped. The result is a new run folder (``RUN-qat`` by
default) that every command reads as usual: ``best.safetensors`` holds the fine-tuned fp32
weights, ``checkpoints/qat.safetensors`` the fake-quantised graph (weights, batch-norm
statistics and learned ranges), from which ``pocketvision export`` writes the int8 .tflite
without calibration.

Recipe (Jacob et al. 2018, and PyTorch's QAT tutorials): the source run's data, augmentation,
label smoothing and weight decay; SGD with Nesterov momentum at 1 % of the source's peak rate
(``--lr`` sets it), annealed to zero by a cosine over ``--qat-epochs`` (default 2); the
activation ranges are frozen for the last epoch, so the weights settle on fixed ranges.
Validation accuracy is that of the fake-quantised graph, the number the int8 file will have.

A killed QAT run leaves its folder without a summary; run the same command again (QAT is a
short fine-tune, it starts over).
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from pocketvision import quantize
from pocketvision.console import captured
from pocketvision.data import DataSplits, ImageSet
from pocketvision.data.augment import PRESETS
from pocketvision.environment import environment, resolve_device
from pocketvision.errors import PocketvisionError
from pocketvision.files import write_atomic, write_json
from pocketvision.rundir import (
    BEST,
    CONFIG,
    METRICS_JSONL,
    QAT_STATE,
    SUMMARY,
    LoadedRun,
    free_run_dir,
    is_run_dir,
    load_run,
    save_tensors,
    write_run_files,
)
from pocketvision.train.config import TrainConfig, resolve
from pocketvision.train.progress import Progress

#: The QAT peak learning rate as a share of the source run's.
LR_SHARE = 0.01


def _source(config: TrainConfig) -> tuple[LoadedRun, TrainConfig]:
    assert config.qat is not None
    path = Path(config.qat).expanduser()
    if not is_run_dir(path):
        raise PocketvisionError(f"--qat {path}: not a pocketvision run folder (no model.json)")
    run = load_run(path)
    if run.config is None:
        raise PocketvisionError(f"--qat {path}: {CONFIG} missing (the data to fine-tune on)")
    source = resolve(TrainConfig.from_dict(run.config))
    return run, source


def _quantisable(run: LoadedRun) -> Any:
    """The QAT graph of the run's model, after checking that it lowers to an int8 file."""
    try:
        import litert_torch  # noqa: F401
    except ImportError:
        raise PocketvisionError(
            "--qat trains for the int8 LiteRT file and needs litert-torch: "
            "pip install 'pocketvision[tflite]'"
        ) from None
    size = run.preprocessing.input_size
    step = "prepare"
    try:
        prepared = quantize.prepare_qat(run.model, size)
        step = "convert"
        # converting rewrites the graph it is given, so the probe is a second graph; not a
        # deepcopy: torchao's train/eval switch of a copied graph still switches the original
        # (the copy kept its dropout and failed to lower: aten.rand_like)
        probe = quantize.prepare_qat(run.model, size)
        quantize.lower_int8(quantize.convert(probe), quantize.nhwc_example(size))
    except PocketvisionError:
        raise
    except Exception as err:
        text = " ".join(str(err).split())[:200] or type(err).__name__
        ops = re.findall(r"aten(?:\.|::)([A-Za-z_0-9]+)", str(err))
        which = f"op {ops[0]}" if ops else "the model"
        raise PocketvisionError(
            f"--qat {run.path}: {which} of {run.spec.name} cannot be quantised to int8 "
            f"({step} failed: {type(err).__name__}: {text})"
        ) from None
    return prepared


def _out(config: TrainConfig, source: Path) -> Path:
    if config.out:
        out = Path(config.out).expanduser()
        if is_run_dir(out) and (out / SUMMARY).exists():
            raise PocketvisionError(f"{out}: already holds a run; choose another --out")
        return out
    return free_run_dir(source.parent / f"{source.name}-qat")


def _accuracy(s: _Session, model: torch.nn.Module, images: ImageSet, batch: int) -> float:
    """Top-1 on a split, scored as training scores val (:func:`evaluate_set`); ``model`` is
    the fake-quantised graph (on the run's device) or the source's fp32 model (on the CPU)."""
    from pocketvision.train.loop import evaluate_set

    on_cpu = model is s.run.model
    device = torch.device("cpu") if on_cpu else s.device
    return evaluate_set(model, images, s.run.preprocessing, device, batch)[1]


@dataclass
class _Session:
    """Everything the phases of a QAT run share."""

    run: LoadedRun
    source: TrainConfig
    out: Path
    graph: Any  # quantize.prepare_qat's graph
    splits: DataSplits
    mean: torch.Tensor
    std: torch.Tensor
    optimizer: torch.optim.Optimizer
    lr: float
    batch: int
    steps: int
    device: torch.device
    progress: Progress
    fp32_val: float = 0.0
    before: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def train_qat(config: TrainConfig) -> dict[str, Any]:
    """Fine-tune the run ``config.qat`` with fake quantisation; return the new run's summary.

    Raises:
        PocketvisionError: ``config.qat`` is no run, its model cannot be quantised (naming
            the op), its data is gone, or ``--out`` holds another run.
    """
    started = time.perf_counter()
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        session = _set_up(config)
        for epoch in range(config.qat_epochs):
            _epoch(session, config, epoch)
        return _finish(session, config, time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)  # the caller's setting, as train() leaves it


def _set_up(config: TrainConfig) -> _Session:
    """The source run checked, the graph prepared (and test-converted), data, optimiser, and
    the new run folder's model, labels, preprocessing and config files."""
    from pocketvision.train.loop import _load_splits, _normalizer

    run, source = _source(config)
    if run.spec.name.startswith("mobileone"):
        raise PocketvisionError(
            f"--qat {run.path}: {run.spec.name} trains in its multi-branch form and ships "
            "folded; a run folder cannot hold folded weights yet, so QAT is not offered for it"
        )
    out = _out(config, run.path)
    progress = Progress(enabled=not config.quiet)
    progress.print(f"qat: {run.path} ({run.spec.name}) -> {out}; checking int8 conversion")
    with captured():  # torch.export, torchao and litert-torch warn and log as they go
        graph = _quantisable(run)
    splits, _ = _load_splits(source)
    if splits.classes != run.labels:
        raise PocketvisionError(
            f"--qat {run.path}: its data {source.data} now has classes {splits.classes[:5]}..., "
            f"the run was trained on {run.labels[:5]}..."
        )
    device = resolve_device(config.device)
    graph.to(device)
    mean, std = _normalizer(run.preprocessing, device)
    lr = config.lr if config.lr is not None else LR_SHARE * float(source.lr or 0.1)
    assert source.weight_decay is not None
    groups: list[dict[str, Any]] = [  # no decay on norms and biases
        {
            "params": [p for p in graph.parameters() if p.ndim > 1],
            "weight_decay": source.weight_decay,
        },
        {"params": [p for p in graph.parameters() if p.ndim <= 1], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    batch = min(config.batch_size, len(splits.train))
    out.mkdir(parents=True, exist_ok=True)
    write_run_files(out, run.spec, run.labels, run.preprocessing)
    write_json(
        out / CONFIG,
        {**(run.config or {}), "qat": str(run.path), "qat_epochs": config.qat_epochs,
         "out": str(out), "lr": lr, "batch_size": batch},
    )  # fmt: skip
    session = _Session(
        run, source, out, graph, splits, mean, std, optimizer, lr, batch,
        steps=max(1, len(splits.train) // batch), device=device, progress=progress,
    )  # fmt: skip
    session.fp32_val = _accuracy(session, run.model, splits.val, config.eval_batch_size)
    session.before = _accuracy(session, graph, splits.val, config.eval_batch_size)
    progress.print(
        f"qat: val {100 * session.fp32_val:.2f}% fp32, {100 * session.before:.2f}% "
        f"fake-quantised before training; {config.qat_epochs} epoch(s) at lr {lr:.1e}"
    )
    return session


def _epoch(s: _Session, config: TrainConfig, epoch: int) -> None:
    """One pass over the training split under fake quantisation, then its metrics row."""
    from pocketvision.train.loop import _augmented

    t0 = time.perf_counter()
    if epoch == config.qat_epochs - 1 and config.qat_epochs > 1:
        from torchao.quantization.pt2e import disable_observer

        s.graph.graph.apply(disable_observer)  # the last epoch trains on fixed ranges
    s.graph.train()
    gen = torch.Generator().manual_seed(config.seed * 1000 + epoch)
    order = torch.randperm(len(s.splits.train), generator=gen)
    preset, total = PRESETS[s.source.augment], s.steps * config.qat_epochs
    loss_sum, correct, seen = 0.0, 0, 0
    s.progress.start_epoch(epoch, config.qat_epochs, s.steps, 0)
    for step in range(s.steps):
        index = order[step * s.batch : (step + 1) * s.batch]
        images = s.splits.train.images[index].to(s.device)
        y = s.splits.train.labels[index].to(s.device)
        x = _augmented(images, preset, gen, bool(s.source.hflip), s.mean, s.std)
        done = epoch * s.steps + step
        for group in s.optimizer.param_groups:
            group["lr"] = s.lr * 0.5 * (1 + math.cos(math.pi * done / total))
        logits = s.graph(x)
        loss = F.cross_entropy(logits, y, label_smoothing=s.source.label_smoothing)
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()
        loss_sum += float(loss.detach()) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        s.progress.advance(loss_sum / seen, seen / (time.perf_counter() - t0), step + 1)
    row = {
        "epoch": epoch + 1,
        "train_loss": round(loss_sum / seen, 5),
        "train_accuracy": round(correct / seen, 5),
        "val_accuracy": round(_accuracy(s, s.graph, s.splits.val, config.eval_batch_size), 5),
        "lr": s.optimizer.param_groups[0]["lr"],
        "images_per_s": round(seen / (time.perf_counter() - t0), 1),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    s.history.append(row)
    write_atomic(s.out / METRICS_JSONL, "".join(json.dumps(r) + "\n" for r in s.history))
    s.progress.end_epoch(row, improved=False)


def _finish(s: _Session, config: TrainConfig, seconds: float) -> dict[str, Any]:
    """The weights (fp32 and the fake-quantised graph), the test split, summary.json."""
    s.graph.eval()
    save_tensors(quantize.fp32_weights(s.graph, s.run.model), s.out / BEST)  # (to the CPU)
    save_tensors(quantize.qat_state(s.graph), s.out / QAT_STATE)
    test = s.splits.test
    test_acc = (
        _accuracy(s, s.graph, test, config.eval_batch_size)
        if test is not None and len(test)
        else None
    )
    summary = {
        "run_dir": str(s.out),
        "model": s.run.spec.name,
        "data": s.source.data,
        "qat_of": str(s.run.path),
        "qat_epochs": config.qat_epochs,
        "classes": len(s.run.labels),
        "num_train": len(s.splits.train),
        "num_val": len(s.splits.val),
        "num_test": len(test) if test is not None else 0,
        "num_bad_files": len(s.splits.bad_files),
        "fp32_val_accuracy": round(s.fp32_val, 5),
        "fake_quant_val_accuracy_before": round(s.before, 5),
        "best_val_accuracy": s.history[-1]["val_accuracy"],
        "best_epoch": config.qat_epochs,
        "test_accuracy": None if test_acc is None else round(test_acc, 5),
        "epochs": config.qat_epochs,
        "stopped_early": False,
        "seconds": round(seconds, 2),
        "images_per_s": round(sum(r["images_per_s"] for r in s.history) / len(s.history), 1),
        "params": sum(p.numel() for p in s.run.model.parameters()),
        "device": str(s.device),
        "world_size": 1,
        "environment": environment(),
    }
    write_json(s.out / SUMMARY, summary)
    return summary
