"""train(config): data in, a complete run directory out.

The whole data set sits on the device as uint8; a step gathers a batch by index, augments it
as one tensor, and takes an optimiser step. Every random choice of step s of epoch e comes
from a generator seeded by (seed, e, s, rank), so a run resumed from a checkpoint taken at
any step replays exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Sampler

from pocketvision.data import DataSplits, ImageSet, load_data, stratified_subset
from pocketvision.data.augment import PRESETS, AugmentPreset, augment_batch, mix_batch, random_erase
from pocketvision.data.inspection import leak_warning, summarize_splits
from pocketvision.environment import environment, resolve_device
from pocketvision.errors import PocketvisionError
from pocketvision.files import write_atomic, write_json
from pocketvision.preprocess import Preprocessing
from pocketvision.rundir import (
    BAD_FILES,
    BEST,
    CONFIG,
    LAST,
    METRICS_CSV,
    METRICS_JSONL,
    PREPROCESSING,
    SUMMARY,
    ModelSpec,
    free_run_dir,
    is_run_dir,
    save_weights,
    write_run_files,
)
from pocketvision.train import distributed, embeddings
from pocketvision.train.checkpoint import load_init, load_state, save_state
from pocketvision.train.config import TrainConfig, pretrained_arg, resolve, validate
from pocketvision.train.imbalance import (
    class_weights,
    make_sampler,
    recall_on_held_out,
    soft_target_loss,
)
from pocketvision.train.interrupt import Interrupted, StopSignals
from pocketvision.train.optim import EMA, build_optimizer, lr_factor, param_groups
from pocketvision.train.progress import Progress
from pocketvision.train.record import metrics_csv, print_summary
from pocketvision.train.tracking import Tracking


@dataclass
class State:
    """Everything about the run's position that last.pt must restore."""

    epoch: int = 0  # completed epochs
    step: int = 0  # completed steps of the current epoch
    global_step: int = 0
    best_val_accuracy: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best one (early stopping)
    elapsed: float = 0.0  # training seconds over all sessions
    history: list[dict[str, float]] = field(default_factory=list)
    sums: dict[str, float] = field(default_factory=dict)  # running sums of the current epoch


def _step_seed(seed: int, epoch: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + step) * 64 + rank


def _out_dir(config: TrainConfig) -> Path:
    if config.out:
        return Path(config.out).expanduser()
    name = Path(config.data).name if config.data not in ("digits", "fashion-mnist") else config.data
    return free_run_dir(Path("runs") / f"{config.model}-{name}")


def _normalizer(prep: Preprocessing, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(prep.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(prep.std, device=device).view(1, -1, 1, 1)
    return mean, std


def _mean_std(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images scaled to [0, 1] (on up to 20,000 images)."""
    x = images[:: max(1, len(images) // 20_000)].float().div_(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp(min=1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


@torch.no_grad()
def evaluate_set(
    model: nn.Module,
    images: ImageSet,
    prep: Preprocessing,
    device: torch.device,
    batch_size: int = 512,
    channels_last: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on an ImageSet."""
    was_training = model.training
    model.eval()
    mean, std = _normalizer(prep, device)
    loss_sum, correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        x = images.images[start : start + batch_size].to(device, non_blocking=True)
        y = images.labels[start : start + batch_size].to(device, non_blocking=True)
        x = (x.float().div_(255) - mean) / std
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp_dtype):
            logits = model(x).float()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    model.train(was_training)
    n = max(1, len(images))
    return loss_sum / n, correct / n


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _load_splits(config: TrainConfig) -> tuple[DataSplits, Preprocessing]:
    assert config.in_chans is not None and config.img_size is not None
    size = (config.in_chans, config.img_size, config.img_size)
    prep = Preprocessing(size, (0.5,) * config.in_chans, (0.5,) * config.in_chans)
    splits = load_data(
        config.data,
        prep,
        val_fraction=config.val_fraction,
        seed=config.seed,
        workers=config.workers,
    )
    if config.train_limit:
        splits.train = stratified_subset(splits.train, config.train_limit, config.seed)
    mean, std = _mean_std(splits.train.images)
    return splits, replace(prep, mean=mean, std=std)


def _build_model(
    config: TrainConfig, num_classes: int, pretrained: str | None = None
) -> tuple[ModelSpec, nn.Module, set[int]]:
    kwargs: dict[str, Any] = {
        "num_classes": num_classes,
        "in_chans": config.in_chans,
        "small_input": config.small_input,
    }
    if config.width_mult is not None:
        kwargs["width_mult"] = config.width_mult
    spec = ModelSpec(config.model, kwargs)
    try:
        if pretrained:
            from pocketvision import create_model

            model = create_model(config.model, pretrained=pretrained_arg(pretrained), **kwargs)
        else:
            model = spec.build()
    except TypeError as err:
        raise PocketvisionError(f"--model {config.model}: {err}") from None
    except ValueError as err:
        raise PocketvisionError(f"--model {config.model}: {err}") from None
    # The head is whatever reset_classifier rebuilds: the one interface every family has.
    before = {id(p) for p in model.parameters()}
    model.reset_classifier(num_classes)  # type: ignore[operator]
    head = {id(p) for p in model.parameters()} - before
    return spec, model, head


def _pretrained_record(model: nn.Module) -> dict[str, Any] | None:
    """What create_model(pretrained=...) loaded: tag, source, sha256, file, mean/std, size."""
    loaded = getattr(model, "pretrained", None)
    if loaded is None:
        return None
    return {
        "tag": loaded.tag,
        "source": loaded.source,
        "sha256": loaded.sha256,
        "path": loaded.path,
        "mean": loaded.mean,
        "std": loaded.std,
        "input_size": loaded.input_size,
    }


def _pretrained_prep(
    prep: Preprocessing, record: dict[str, Any] | None, resumed_out: Path | None
) -> Preprocessing:
    """The weights' own normalisation (their RGB mean/std, averaged for grayscale input);
    a resumed run keeps what its first session wrote. A file without a table row keeps the
    data's own statistics."""
    if resumed_out is not None:
        saved = json.loads((resumed_out / PREPROCESSING).read_text())
        return replace(prep, mean=tuple(saved["mean"]), std=tuple(saved["std"]))
    if record is None or record["mean"] is None or record["std"] is None:
        return prep
    mean, std = tuple(record["mean"]), tuple(record["std"])
    if prep.input_size[0] == 1:  # the first conv's RGB filters were summed (timm's rule)
        mean, std = (round(sum(mean) / 3, 4),), (round(sum(std) / 3, 4),)
    return replace(prep, mean=mean, std=std)


def _read_config(out: Path) -> dict[str, Any]:
    try:
        value = json.loads((out / CONFIG).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _prepare_run_dir(out: Path, config: TrainConfig) -> dict[str, Any] | None:
    """Return the last.pt state when resuming; refuse to overwrite another run."""
    last = out / LAST
    if config.resume:
        if last.exists():
            return load_state(last)
        return None  # killed before its first checkpoint: start over in the same folder
    if is_run_dir(out) and config.out:
        raise PocketvisionError(
            f"{out}: already holds a run; pass --resume to continue it or choose another --out"
        )
    return None


def _batches(
    sampler: Sampler[int], per_rank: int, start: int
) -> Iterator[tuple[int, torch.Tensor]]:
    order = torch.tensor(list(iter(sampler)), dtype=torch.int64)
    steps = _steps(len(order), per_rank)
    for step in range(start, steps):
        yield step, order[step * per_rank : (step + 1) * per_rank]


def _steps(n: int, per_rank: int) -> int:
    # drop the last partial batch (a batch of 1 breaks batch norm), but always take one step
    return max(1, n // per_rank)


# Read the running loss and accuracy back from the device every this many steps.
SYNC_EVERY = 20


def _flush(
    pending: torch.Tensor, sums: dict[str, float], epoch: int, step: int, config: TrainConfig
) -> None:
    loss_sum, correct = pending.tolist()
    pending.zero_()
    if not math.isfinite(loss_sum):
        raise PocketvisionError(
            f"loss became {loss_sum} by epoch {epoch + 1} step {step + 1}; lower --lr "
            f"(now {config.lr}) or turn off --amp"
        )
    sums["loss"] += loss_sum
    sums["correct"] += correct


@dataclass
class Session:
    """A training run as its phases share it: built by :func:`_set_up`, read by each epoch."""

    config: TrainConfig
    d: distributed.Dist
    device: torch.device
    out: Path
    splits: DataSplits
    prep: Preprocessing
    spec: ModelSpec
    model: nn.Module  # the model being trained (unwrapped)
    optimizer: torch.optim.Optimizer
    state: State
    ema: EMA | None = None
    scaler: torch.amp.GradScaler | None = None
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    weight: torch.Tensor | None = None  # class weights of the loss
    net: nn.Module | None = None  # what a step runs: DDP(model), model, or the head alone
    progress: Progress = field(default_factory=lambda: Progress(enabled=False))
    tracking: Tracking | None = None
    # what the summary adds: --init counts, the published weights, data timing and inspection
    record: dict[str, Any] = field(default_factory=dict)
    # the step plan (set by _plan_steps)
    embedded: embeddings.Embedded | None = None
    eval_head: nn.Module | None = None
    best_head: dict[str, torch.Tensor] | None = None  # the best epoch's head, not yet on disk
    sampler: Sampler[int] | None = None
    train_images: torch.Tensor | None = None
    train_labels: torch.Tensor | None = None
    mean: torch.Tensor | None = None  # the normalisation, on the device
    std: torch.Tensor | None = None
    per_rank: int = 1
    steps_per_epoch: int = 1
    last_checkpoint: float = 0.0
    stopped_early: bool = False

    @property
    def eval_model(self) -> nn.Module:
        """What is scored and saved: the EMA weights with --ema, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def score(self, model: nn.Module, images: ImageSet) -> tuple[float, float]:
        """(loss, accuracy): val and test scored alike, in the memory format and precision
        training ran in."""
        return evaluate_set(
            model, images, self.prep, self.device, self.config.eval_batch_size,
            self.channels_last, self.amp_dtype,
        )  # fmt: skip

    def checkpoint(self) -> None:
        if self.d.main:
            snapshot = _snapshot(
                self.config, self.model, self.optimizer, self.ema, self.scaler, self.state
            )
            save_state(self.out / LAST, snapshot)
        self.last_checkpoint = time.monotonic()


def _step(
    s: Session, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a normalised batch; returns (detached loss, logits).

    A head on embeddings steps without mixing, in its own memory format, in full precision.
    """
    config, device, on_head = s.config, s.device, s.embedded is not None
    num_classes = len(s.splits.classes)
    eps = config.label_smoothing
    targets = torch.full((len(y), num_classes), eps / num_classes, device=device)
    targets.scatter_(1, y[:, None], 1 - eps + eps / num_classes)
    x, targets = mix_batch(x, targets, PRESETS["none" if on_head else config.augment], gen)
    if s.channels_last and not on_head:
        x = x.contiguous(memory_format=torch.channels_last)
    assert s.net is not None
    with _autocast(device, None if on_head else s.amp_dtype):
        logits = s.net(x)
    loss = soft_target_loss(logits, targets, s.weight)
    s.optimizer.zero_grad(set_to_none=True)
    if s.scaler is not None:
        s.scaler.scale(loss).backward()
        s.scaler.unscale_(s.optimizer)
    else:
        loss.backward()
    if config.grad_clip > 0:
        nn.utils.clip_grad_norm_(
            [p for p in s.model.parameters() if p.requires_grad], config.grad_clip
        )
    if s.scaler is not None:
        s.scaler.step(s.optimizer)
        s.scaler.update()
    else:
        s.optimizer.step()
    return loss.detach(), logits.detach()


def _restore(
    resumed: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: EMA | None,
    scaler: torch.amp.GradScaler | None,
) -> State:
    """Put last.pt's model, optimizer, EMA, scaler and RNG back; return the run's position."""
    model.load_state_dict(resumed["model"])
    optimizer.load_state_dict(resumed["optimizer"])
    if ema is not None and resumed.get("ema") is not None:
        ema.module.load_state_dict(resumed["ema"])
    if scaler is not None and resumed.get("scaler"):
        scaler.load_state_dict(resumed["scaler"])
    torch.set_rng_state(resumed["rng"]["torch"])
    return State(**resumed["state"])


def _snapshot(
    config: TrainConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: EMA | None,
    scaler: torch.amp.GradScaler | None,
    state: State,
) -> dict[str, Any]:
    """last.pt's content: tensors, numbers, strings, lists and dicts only (weights_only-safe)."""
    return {
        "format": 1,
        "config": config.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "ema": ema.module.state_dict() if ema is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "state": asdict(state),
        "rng": {"torch": torch.get_rng_state()},
    }


def _write_header(
    out: Path,
    spec: ModelSpec,
    splits: DataSplits,
    prep: Preprocessing,
    config: TrainConfig,
    pretrained: dict[str, Any] | None,
) -> None:
    """The files a run has from its first second: model, labels, preprocessing, config
    (with the published weights it started from, when --pretrained)."""
    out.mkdir(parents=True, exist_ok=True)
    write_run_files(out, spec, splits.classes, prep)
    record = config.to_dict()
    if pretrained is None and config.resume:  # keep what the first session recorded
        pretrained = _read_config(out).get("pretrained_weights")
    if pretrained is not None:
        record["pretrained_weights"] = pretrained
    write_json(out / CONFIG, record)
    write_atomic(out / BAD_FILES, "".join(f"{p}\t{r}\n" for p, r in splits.bad_files))


def _announce(
    progress: Progress, config: TrainConfig, splits: DataSplits, where: str, out: Path
) -> None:
    progress.print(
        f"training {config.model} on {config.data}: {len(splits.train)} train / "
        f"{len(splits.val)} val / {len(splits.test) if splits.test else 0} test images, "
        f"{len(splits.classes)} classes, {config.in_chans}x{config.img_size}x{config.img_size}, "
        f"{config.epochs} epochs on {where} -> {out}"
    )
    if splits.bad_files:
        progress.print(f"skipped {len(splits.bad_files)} bad file(s); see {out / BAD_FILES}")


def _augmented(
    batch: torch.Tensor,
    preset: AugmentPreset,
    gen: torch.Generator,
    hflip: bool,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> torch.Tensor:
    """uint8 (N, C, H, W) -> augmented, normalised float batch (erasing after normalising,
    so erased pixels are the data set's mean)."""
    x = augment_batch(batch.float().div_(255), preset, gen, hflip=hflip)
    x = (x - mean) / std
    return random_erase(x, preset.erase, gen) if preset.erase > 0 else x


def _record_epoch(state: State, row: dict[str, float]) -> bool:
    """Append an epoch's metrics, advance the position; True when val accuracy improved."""
    state.history.append(row)
    state.epoch, state.step, state.sums = int(row["epoch"]), 0, {}
    if row["val_accuracy"] > state.best_val_accuracy:
        state.best_val_accuracy, state.best_epoch, state.bad_epochs = (
            row["val_accuracy"],
            state.epoch,
            0,
        )
        return True
    state.bad_epochs += 1
    return False


class StopTraining(Exception):  # temporary seam until house-train lands
    """Raised by an ``on_epoch`` callback to end the run after that epoch."""


def train(
    config: TrainConfig, *, on_epoch: Callable[[int, dict[str, float]], None] | None = None
) -> dict[str, Any]:
    """Train a model and write a complete run directory; return the summary.

    Args:
        config: The run's settings (see :class:`TrainConfig`).

    Returns:
        The summary dict also written to summary.json.

    Raises:
        PocketvisionError: Bad data, unknown model, corrupt --init or --resume checkpoint.
    """
    validate(config)
    if config.qat:
        from pocketvision.train.qat import train_qat

        summary = train_qat(config)
        if not config.quiet:
            print_summary(summary)
        return summary
    device_pre = resolve_device(config.device)
    d = distributed.setup(device_pre)
    device = resolve_device(config.device, d.local_rank)
    threads = torch.get_num_threads()
    try:
        return _train(config, d, device, on_epoch)
    except RuntimeError as err:
        if d.world <= 1 or not distributed.lost_peer(err):
            raise
        # another rank died (killed, out of memory): say so in one line on every survivor
        raise PocketvisionError(
            f"rank {d.rank}: another process of the job stopped ({distributed.first_line(err)}); "
            f"continue from the last checkpoint with --resume --out {config.out or 'RUN'}"
        ) from None
    finally:
        torch.set_num_threads(threads)  # a head on embeddings trains on one (see _train)
        distributed.teardown(d)


def _resolve_run(
    config: TrainConfig, d: distributed.Dist
) -> tuple[TrainConfig, Path, dict[str, Any] | None]:
    """(resolved config, run folder, last.pt state when resuming). A resumed run's recorded
    config wins; only where and how loudly to run may change."""
    out = _out_dir(config)
    resumed = _prepare_run_dir(out, config)
    if resumed is not None:
        saved = TrainConfig.from_dict(resumed["config"])
        if d.main and (unknown := TrainConfig.unknown_keys(resumed["config"])):
            print(
                f"{out / LAST}: ignoring settings this version does not know: {', '.join(unknown)}"
            )
        config = replace(
            saved, resume=True, out=str(out), quiet=config.quiet, device=config.device,
            threads=config.threads,
        )  # fmt: skip
    config = resolve(replace(config, out=str(out)))
    if config.batch_size % d.world:
        raise PocketvisionError(
            f"--batch-size {config.batch_size} must divide by {d.world} processes"
        )
    return config, out, resumed


def _amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Mixed precision: bf16 where the device has it (every CPU), else fp16 (GradScaler)."""
    on_gpu = device.type == "cuda"
    if not (on_gpu if config.amp is None else config.amp):
        return None
    return torch.bfloat16 if (not on_gpu or torch.cuda.is_bf16_supported()) else torch.float16


def _wants_channels_last(config: TrainConfig, model: nn.Module, device: torch.device) -> bool:
    if config.channels_last is not None:
        return config.channels_last
    # NHWC: faster on GPUs, and on CPUs for depthwise/grouped convolutions (oneDNN's NHWC
    # kernels; measured 5x for mobilenet_v1_025 on 2 cores), slower for dense LeNet
    grouped = any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in model.modules())
    return device.type == "cuda" or grouped


def _starting_weights(
    config: TrainConfig, model: nn.Module, head_ids: set[int], classes: list[str], fresh: bool
) -> dict[str, Any]:
    """--init's weights (a fresh run only; a resumed one has its own in last.pt) and
    --freeze-backbone; returns what the summary records about --init."""
    record: dict[str, Any] = {}
    if config.init and fresh:
        head_names = {n for n, p in model.named_parameters() if id(p) in head_ids}
        n_loaded, skipped = load_init(model, config.init, config.model, head_names, classes)
        record = {"init_loaded": n_loaded, "init_skipped": skipped}
    if config.freeze_backbone:
        for p in model.parameters():
            p.requires_grad_(id(p) in head_ids)
    return record


def _set_up(config: TrainConfig, d: distributed.Dist, device: torch.device) -> Session:
    """Everything before the first step: config, data, model, optimiser, run files, trackers."""
    config, out, resumed = _resolve_run(config, d)
    if config.threads:
        torch.set_num_threads(config.threads)
    t_load = time.perf_counter()
    splits, prep = _load_splits(config)
    data_check = summarize_splits(splits)  # exact copies within / across splits, balance
    record: dict[str, Any] = {"data_seconds": round(time.perf_counter() - t_load, 2)}
    torch.manual_seed(config.seed)
    # published weights on a fresh run; a resumed run's own weights come from last.pt
    spec, model, head_ids = _build_model(
        config, len(splits.classes), config.pretrained if resumed is None else None
    )
    pretrained = _pretrained_record(model)
    if config.pretrained:
        prep = _pretrained_prep(prep, pretrained, out if resumed is not None else None)
    weight = class_weights(config.class_weights, splits.train.labels, splits.classes)
    channels_last = _wants_channels_last(config, model, device)
    record.update(_starting_weights(config, model, head_ids, splits.classes, resumed is None))
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    groups = param_groups(model, config, head_ids, transfer=bool(config.init or config.pretrained))
    optimizer = build_optimizer(groups, config)
    amp_dtype = _amp_dtype(config, device)
    ema = EMA(model, config.ema_decay) if config.ema else None
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    state = State() if resumed is None else _restore(resumed, model, optimizer, ema, scaler)
    s = Session(
        config, d, device, out, splits, prep, spec, model, optimizer, state, ema, scaler,
        amp_dtype, channels_last, None if weight is None else weight.to(device), record=record,
    )  # fmt: skip
    s.net = model
    if d.world > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        s.net = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if d.main:
        _write_header(out, spec, splits, prep, config, pretrained)
    s.tracking = Tracking.open(config.log, out, config.tracking_uri, main=d.main)
    s.tracking.start(config.to_dict())
    s.progress = Progress(enabled=d.main and not config.quiet)
    _announce(s.progress, config, splits, f"{device}{f' x{d.world}' if d.world > 1 else ''}", out)
    _plan_steps(s, head_ids)
    if leak := leak_warning(data_check, config.data):
        s.progress.print(leak)
    record.update(pretrained=pretrained, data_inspection=data_check)
    return s


def _plan_steps(s: Session, head_ids: set[int]) -> None:
    """What a step trains on: the whole training set on the device, batches gathered by
    index, or (--freeze-backbone) the head alone on embeddings computed once."""
    config, device, splits = s.config, s.device, s.splits
    s.mean, s.std = _normalizer(s.prep, device)
    sample = (splits.train.images[:8].to(device).float().div_(255) - s.mean) / s.std
    head_name, note = embeddings.plan(config, s.d.world, s.model, head_ids, sample)
    if note:
        s.progress.print(note)
    if head_name is not None:
        s.embedded = embeddings.embed_splits(
            s.model, head_name, s.spec, splits, s.prep, config, device, s.channels_last,
            s.progress.print,
        )  # fmt: skip
        s.progress.print(embeddings.describe(s.embedded.record))
        s.net = s.model.get_submodule(head_name)
        s.eval_head = s.eval_model.get_submodule(head_name)
        s.train_images, s.train_labels = splits.train.images, s.embedded.train_labels
    else:
        s.train_images, s.train_labels = (
            splits.train.images.to(device),
            splits.train.labels.to(device),
        )
    s.sampler = make_sampler(
        config.sampler, s.train_labels.cpu(), num_replicas=s.d.world, rank=s.d.rank,
        seed=config.seed,
    )  # fmt: skip
    s.per_rank = config.batch_size // s.d.world
    s.steps_per_epoch = _steps(s.sampler.num_samples, s.per_rank)
    s.last_checkpoint = time.monotonic()


def _train(
    config: TrainConfig,
    d: distributed.Dist,
    device: torch.device,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """The run's phases: set up, epochs (each: steps, then its files), finish."""
    s = _set_up(config, d, device)
    threads = torch.get_num_threads()
    if s.embedded is not None and device.type == "cpu":
        # a linear head's step is microseconds of work: more threads only add synchronisation
        # (1,000 steps of Linear(84, 10): 0.4 s on one thread, 1.5-23 s on two busy cores)
        torch.set_num_threads(1)
    try:
        with StopSignals() as stop:
            while s.state.epoch < s.config.epochs and not s.stopped_early:
                sums, started = _run_epoch(s, stop)
                _end_epoch(s, sums, started, on_epoch)
    finally:
        s.progress.close()
        torch.set_num_threads(threads)
    distributed.barrier(d)
    return _finish_run(s)


def _run_epoch(s: Session, stop: StopSignals) -> tuple[dict[str, float], float]:
    """The steps of one epoch, from where the run stands; returns (running sums, start time).

    A checkpoint is written when one is due (--checkpoint-steps / --checkpoint-seconds) and,
    on SIGTERM / SIGINT agreed by every rank, after the current step (then Interrupted)."""
    config, state, epoch = s.config, s.state, s.state.epoch
    assert s.sampler is not None and s.net is not None
    s.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
    s.net.train()
    if config.freeze_backbone:  # a linear probe keeps the backbone's batch-norm statistics
        for m in s.model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    sums = state.sums or {"loss": 0.0, "correct": 0.0, "seen": 0.0, "seconds": 0.0}
    # loss sum, correct; a checkpoint written on a signal carries the unflushed part, so the
    # resumed run adds up in the same order, to the last bit
    pending = torch.tensor(
        [sums.pop("pending_loss", 0.0), sums.pop("pending_correct", 0.0)],
        dtype=torch.float64, device=s.device,
    )  # fmt: skip
    s.progress.start_epoch(epoch, config.epochs, s.steps_per_epoch, state.step)
    t0 = time.perf_counter()
    for step, idx in _batches(s.sampler, s.per_rank, state.step):
        _train_step(s, epoch, step, idx, pending)
        sums["seen"] += len(idx)
        # (a head epoch on embeddings takes milliseconds: it checkpoints at epoch ends only)
        due = s.embedded is None and (
            (config.checkpoint_steps and state.step % config.checkpoint_steps == 0)
            or (time.monotonic() - s.last_checkpoint > config.checkpoint_seconds)
        )
        if due or state.step % SYNC_EVERY == 0 or state.step == s.steps_per_epoch:
            _flush(pending, sums, epoch, step, config)
            rate = sums["seen"] * s.d.world / max(sums["seconds"] + time.perf_counter() - t0, 1e-9)
            s.progress.advance(sums["loss"] / sums["seen"], rate, state.step)
        if due and state.step < s.steps_per_epoch:
            state.sums = {**sums, "seconds": sums["seconds"] + time.perf_counter() - t0}
            s.checkpoint()
        if signum := stop.agreed(s.d):
            loss_part, correct_part = pending.tolist()
            state.sums = {
                **sums, "seconds": sums["seconds"] + time.perf_counter() - t0,
                "pending_loss": loss_part, "pending_correct": correct_part,
            }  # fmt: skip
            s.checkpoint()
            distributed.barrier(s.d)  # rank 0 has written last.pt before anyone exits
            raise Interrupted(signum, epoch, state.step, s.out / LAST)
    return sums, t0


def _train_step(
    s: Session, epoch: int, step: int, idx: torch.Tensor, pending: torch.Tensor
) -> None:
    """Step ``step`` of ``epoch``: its learning rate, its seeded batch, the update, the EMA;
    its loss and correct count added to ``pending`` (on the device: reading them every step
    would stall a GPU)."""
    config, state = s.config, s.state
    gstep = epoch * s.steps_per_epoch + step
    factor = lr_factor(gstep, s.steps_per_epoch * config.epochs, config, s.steps_per_epoch)
    for g in s.optimizer.param_groups:
        g["lr"] = g["base_lr"] * factor
    seed = _step_seed(config.seed, epoch, step, s.d.rank)
    torch.manual_seed(seed)  # dropout and anything else drawing from the global RNG
    gen = torch.Generator(device=s.device).manual_seed(seed)
    idx = idx.to(s.device)
    assert s.train_labels is not None and s.train_images is not None
    y = s.train_labels[idx]
    if s.embedded is None:
        assert s.mean is not None and s.std is not None
        images = s.train_images[idx]
        x = _augmented(images, PRESETS[config.augment], gen, bool(config.hflip), s.mean, s.std)
    else:
        x = s.embedded.train[idx]
    loss, logits = _step(s, x, y, gen)
    if s.ema is not None:
        s.ema.update(s.model, gstep)
    pending += torch.stack([loss.double() * len(y), (logits.argmax(1) == y).sum()])
    state.step = step + 1
    state.global_step = gstep + 1


def _end_epoch(
    s: Session,
    sums: dict[str, float],
    started: float,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
) -> None:
    """Score val, record the epoch's row, decide early stopping, write the run's files."""
    config, state, d = s.config, s.state, s.d
    train_seconds = sums["seconds"] + time.perf_counter() - started
    loss_sum, correct, seen = distributed.all_sum([sums["loss"], sums["correct"], sums["seen"]], d)
    if s.embedded is None:
        val_loss, val_acc = s.score(s.eval_model, s.splits.val)
    else:
        assert s.eval_head is not None
        val_loss, val_acc = embeddings.evaluate_head(
            s.eval_head, s.embedded.val, s.embedded.val_labels
        )
    epoch_seconds = time.perf_counter() - started + sums["seconds"]
    state.elapsed += epoch_seconds
    row = {
        "epoch": state.epoch + 1,
        "train_loss": round(loss_sum / seen, 5),
        "train_accuracy": round(correct / seen, 5),
        "val_loss": round(val_loss, 5),
        "val_accuracy": round(val_acc, 5),
        "lr": s.optimizer.param_groups[-1]["lr"],
        "images_per_s": round(seen / max(train_seconds, 1e-9), 1),
        "seconds": round(epoch_seconds, 2),
        "elapsed": round(state.elapsed, 2),
    }
    improved = _record_epoch(state, row)
    s.stopped_early = bool(config.patience) and state.bad_epochs >= config.patience
    s.progress.end_epoch(row, improved)
    if on_epoch is not None:
        try:
            on_epoch(state.epoch, row)
        except StopTraining:
            s.stopped_early = True
    if d.main:
        _write_epoch_files(s, row, improved)


def _write_epoch_files(s: Session, row: dict[str, float], improved: bool) -> None:
    """best.safetensors when val improved, the metrics files, last.pt, the trackers' row."""
    config = s.config
    if improved and s.embedded is None:
        save_weights(s.eval_model, s.out / BEST)
    elif improved:
        assert s.eval_head is not None
        s.best_head = {k: v.clone() for k, v in s.eval_head.state_dict().items()}
    assert s.tracking is not None
    s.tracking.epoch(row)
    # head epochs take milliseconds: their files are written when a checkpoint is due
    finishing = s.stopped_early or s.state.epoch >= config.epochs
    if (
        s.embedded is None
        or finishing
        or time.monotonic() - s.last_checkpoint > config.checkpoint_seconds
    ):
        if s.embedded is not None and s.best_head is not None:
            assert s.eval_head is not None
            embeddings.save_with_head(s.eval_model, s.eval_head, s.best_head, s.out / BEST)
        history = s.state.history
        write_atomic(s.out / METRICS_JSONL, "".join(_json_line(r) for r in history))
        write_atomic(s.out / METRICS_CSV, metrics_csv(history))
        s.checkpoint()


def _finish_run(s: Session) -> dict[str, Any]:
    """The summary (test split, per-class recall, what the run started from), written and
    sent to the trackers."""
    config, record = s.config, s.record
    summary = _finish(s)
    summary.update({k: record[k] for k in ("init_loaded", "init_skipped") if k in record})
    if s.embedded is not None:
        summary["embeddings"] = {**s.embedded.record, "head_seconds": round(s.state.elapsed, 3)}
    if config.pretrained:
        summary["pretrained"] = record["pretrained"] or _read_config(s.out).get(
            "pretrained_weights"
        )
    summary["data_seconds"] = record["data_seconds"]
    summary["data_inspection"] = record["data_inspection"]
    summary["per_class_recall"], matrix = recall_on_held_out(
        s.eval_model, s.splits, s.prep, s.device, config.eval_batch_size
    )
    if s.d.main:
        write_json(s.out / SUMMARY, summary)
        assert s.tracking is not None
        s.tracking.finish(summary, matrix, s.splits.classes)
        if not config.quiet:
            print_summary(summary)
    return summary


def _json_line(row: dict[str, Any]) -> str:
    return json.dumps(row) + "\n"


def _finish(s: Session) -> dict[str, Any]:
    """Reload the best weights, score the test split as val was scored, and assemble the
    summary."""
    from safetensors.torch import load_file

    out, splits, state, eval_model = s.out, s.splits, s.state, s.eval_model
    best = load_file(str(out / BEST)) if (out / BEST).exists() else None
    if best is not None:
        eval_model.load_state_dict(best)
    test_acc = test_loss = None
    if splits.test is not None and len(splits.test):
        test_loss, test_acc = s.score(eval_model, splits.test)
    train_secs = [r["seconds"] for r in state.history]
    ips = [r["images_per_s"] for r in state.history]
    return {
        "run_dir": str(out),
        "model": s.spec.name,
        "data": s.config.data,
        "classes": len(splits.classes),
        "num_train": len(splits.train),
        "num_val": len(splits.val),
        "num_test": len(splits.test) if splits.test is not None else 0,
        "num_bad_files": len(splits.bad_files),
        "best_val_accuracy": round(state.best_val_accuracy, 5),
        "best_epoch": state.best_epoch,
        "test_accuracy": None if test_acc is None else round(test_acc, 5),
        "test_loss": None if test_loss is None else round(test_loss, 5),
        "epochs": state.epoch,
        "stopped_early": s.stopped_early,
        "seconds": round(state.elapsed, 2),
        "images_per_s": round(sum(ips) / len(ips), 1) if ips else 0.0,
        "epoch_seconds": train_secs,
        "params": sum(p.numel() for p in eval_model.parameters()),
        "device": str(s.device),
        "world_size": s.d.world,
        "environment": environment(),
    }
