"""TrainConfig: every knob of a training run, one field per ``pocketvision train`` flag.

Fields left as None are resolved from the data and the model (:func:`resolve`), and the
resolved config is what a run records in config.json and what --resume reads back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from pocketvision.errors import PocketvisionError

# The default model, chosen by measurement: the mobile-family model that trains fastest on a
# CPU (figures: benchmarks/results/recipe_notes.md)
DEFAULT_MODEL = "mobilenet_v1_025"

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine")
# the names of pocketvision.data.augment.PRESETS, spelled out so that parsing a command line does
# not import torch (tests/data/test_augment.py holds the two to each other)
AUGMENTS = ("none", "flip", "light", "erase", "standard", "strong")
DEVICES = ("auto", "cpu", "cuda", "mps")
# --sampler (train/imbalance.py) and --log (train/tracking.py) choices, here so that parsing a
# command line does not import torch
SAMPLERS = ("shuffle", "balanced")
TRACKERS = ("tensorboard", "mlflow")


@dataclass
class TrainConfig:
    # --- data ---
    # folder per class, CSV manifest, IDX folder, "fashion-mnist", "digits"
    data: str = "fashion-mnist"
    # share of each class held out for validation when the data has no val split
    val_fraction: float = 0.1
    # use at most this many training images (stratified); quick runs
    train_limit: int | None = None
    # square input side; None: 28 Fashion-MNIST/IDX, 32 digits, 64 photos
    img_size: int | None = None
    # 1 grayscale or 3 RGB; None: 1 for Fashion-MNIST/IDX/digits, else 3
    in_chans: int | None = None
    # image decoding threads; None: CPU count
    workers: int | None = None
    # --- model ---
    # a registered name (`pocketvision models`)
    model: str = DEFAULT_MODEL
    # channel multiplier; None keeps the name's own
    width_mult: float | None = None
    # adapt the stem to 28-64 px inputs; None: img_size <= 64
    small_input: bool | None = None
    # --- optimisation ---
    # passes over the training split
    epochs: int = 10
    # images per optimiser step, summed over all processes
    batch_size: int = 128
    # peak learning rate; None: 0.1 * batch/128 for SGD (0.5 with --freeze-backbone), 2e-3 for AdamW
    lr: float | None = None
    # "sgd" (Nesterov momentum) or "adamw"
    optimizer: str = "sgd"
    # SGD momentum
    momentum: float = 0.9
    # L2 weight decay; None: 5e-4 SGD, 0.05 AdamW; never on norms or biases
    weight_decay: float | None = None
    # "onecycle" (warm up then cosine) or "cosine" (linear warmup)
    schedule: str = "onecycle"
    # warmup length for cosine (onecycle warms up for 25% of steps)
    warmup_epochs: float = 1.0
    # target smoothing (Szegedy et al. 2016)
    label_smoothing: float = 0.1
    # clip the gradient norm to this; 0 turns clipping off
    grad_clip: float = 5.0
    # augmentation preset, mildest to strongest (data/augment.py)
    augment: str = "standard"
    # allow horizontal flips; None: yes except for digits
    hflip: bool | None = None
    # evaluate and save an exponential moving average of the weights
    ema: bool = False
    # EMA decay per step (warmed up over the first steps)
    ema_decay: float = 0.999
    # stop after this many epochs without a better val accuracy; 0: never
    patience: int = 0
    # --- class imbalance (train/imbalance.py) ---
    # loss weight per class: none, auto (inverse effective number, Cui et al. 2019) or a JSON
    # file {"label": weight, ...}
    class_weights: str = "none"
    # shuffle (every image once per epoch) or balanced (classes equally likely, with replacement)
    sampler: str = "shuffle"
    # --- transfer learning ---
    # start from these weights (run dir, .safetensors, .pt state dict)
    init: str | None = None
    # start from published ImageNet weights (`pocketvision weights`): a tag, a weights file, or
    # the flag alone for the model's default checkpoint; its mean/std and size become defaults
    pretrained: str | None = None
    # train only the classifier head (linear probe)
    freeze_backbone: bool = False
    # with --init and no freezing, backbone lr = lr * this
    backbone_lr_scale: float = 0.1
    # (train/embeddings.py; cached in $POCKETVISION_HOME/embeddings, one pass per image)
    # --freeze-backbone: train the head on cached embeddings; None: unless --augment is random
    embeddings: bool | None = None
    # fixed augmented copies of each training image to embed (--augment's preset, --seed)
    embed_augment: int = 0
    # --- quantisation-aware training (train/qat.py) ---
    # fine-tune this trained run with int8 fake quantisation; writes RUN-qat (or --out)
    qat: str | None = None
    # passes over the training split under fake quantisation
    qat_epochs: int = 2
    # --- run ---
    # run directory; None: runs/MODEL-DATA (numbered if taken)
    out: str | None = None
    # continue the run in --out from checkpoints/last.pt
    resume: bool = False
    # seeds the split, initialisation, shuffling and augmentation
    seed: int = 0
    # auto (cuda, then mps, then cpu), cpu, cuda, mps
    device: str = "auto"
    # mixed precision (bf16, else fp16); None: on for cuda
    amp: bool | None = None
    # NHWC memory format; None: on for cuda and for models with depthwise/grouped convs
    channels_last: bool | None = None
    # torch CPU threads; None: torch's default
    threads: int | None = None
    # images per evaluation batch
    eval_batch_size: int = 512
    # also write last.pt mid-epoch after this many seconds
    checkpoint_seconds: float = 60.0
    # also write last.pt every this many steps; 0: off
    checkpoint_steps: int = 0
    # no progress bar or per-epoch lines
    quiet: bool = False
    # --- experiment tracking (train/tracking.py) ---
    # tensorboard, mlflow or tensorboard,mlflow; None: off
    log: str | None = None
    # MLflow tracking URI (a server, sqlite:///mlflow.db, file:/path); None: file store ./mlruns
    tracking_uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The config in ``data``; keys this version does not know are left out (see
        :meth:`unknown_keys`, which callers report)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def unknown_keys(cls, data: dict[str, Any]) -> list[str]:
        """Keys of ``data`` that are no TrainConfig field (a config from another version)."""
        known = {f.name for f in fields(cls)}
        return sorted(k for k in data if k not in known)


def validate(config: TrainConfig) -> None:
    """Raise a one-line PocketvisionError for any value out of range."""
    checks = [
        (config.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}"),
        (config.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
        (config.augment in AUGMENTS, f"--augment must be one of {', '.join(AUGMENTS)}"),
        (config.device in DEVICES, f"--device must be one of {', '.join(DEVICES)}"),
        (config.epochs >= 1, "--epochs must be >= 1"),
        (config.batch_size >= 1, "--batch-size must be >= 1"),
        (config.lr is None or config.lr > 0, "--lr must be > 0"),
        (0 <= config.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
        (0 < config.val_fraction < 1, "--val-fraction must be in (0, 1)"),
        (config.img_size is None or config.img_size >= 8, "--img-size must be >= 8"),
        (config.in_chans in (None, 1, 3), "--in-chans must be 1 or 3"),
        (0 < config.ema_decay < 1, "--ema-decay must be in (0, 1)"),
        (config.patience >= 0, "--patience must be >= 0"),
        (config.train_limit is None or config.train_limit >= 2, "--train-limit must be >= 2"),
        (config.sampler in SAMPLERS, f"--sampler must be one of {', '.join(SAMPLERS)}"),
        (
            config.class_weights in ("auto", "none") or Path(config.class_weights).is_file(),
            f"--class-weights {config.class_weights}: no such file (give auto, none or a JSON "
            "file of label: weight)",
        ),
        (
            all(t.strip() in TRACKERS for t in (config.log or "tensorboard").split(",")),
            f"--log {config.log}: use {' or '.join(TRACKERS)} (both: tensorboard,mlflow)",
        ),
        (config.embed_augment >= 0, "--embed-augment must be >= 0"),
        (
            not (config.embeddings or config.embed_augment) or config.freeze_backbone,
            "--embeddings and --embed-augment train a frozen backbone's head: add "
            "--freeze-backbone",
        ),
        (
            not config.embed_augment or config.embeddings is not False,
            "--embed-augment needs the embedding cache: drop --no-embeddings",
        ),
        (
            not config.embed_augment or config.augment != "none",
            "--embed-augment N needs an --augment preset other than none (the copies' recipe)",
        ),
        (
            not (config.pretrained and config.init),
            "--pretrained and --init both give the starting weights: pass one of them",
        ),
        (config.qat_epochs >= 1, "--qat-epochs must be >= 1"),
        (
            not config.qat
            or not (config.resume or config.pretrained or config.init or config.freeze_backbone),
            "--qat fine-tunes a trained run as it is: drop --resume, --pretrained, --init and "
            "--freeze-backbone",
        ),
        (
            not config.resume or bool(config.out),
            "--resume needs --out RUN_FOLDER (the run to continue)",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise PocketvisionError(message)


# --pretrained given alone: the model's default checkpoint
DEFAULT_WEIGHTS = "default"


def pretrained_arg(value: str | None) -> bool | str | None:
    """TrainConfig.pretrained as create_model's ``pretrained``: True for the default tag."""
    return True if value == DEFAULT_WEIGHTS else value


def pretrained_size(config: TrainConfig) -> int | None:
    """The input side the --pretrained checkpoint was evaluated at (None for a file)."""
    if not config.pretrained:
        return None
    from pocketvision.weights import find_checkpoint, looks_like_file

    tag = pretrained_arg(config.pretrained)
    if isinstance(tag, str) and looks_like_file(tag):
        return None
    ckpt = find_checkpoint(config.model, tag if tag is not None else True)
    return ckpt.input_size[1] if ckpt.input_size else None


def resolve(config: TrainConfig) -> TrainConfig:
    """Fill every None that depends on data, model or device with its concrete value."""
    from pocketvision.data import default_image_size

    chans, size = default_image_size(config.data)
    img_size = config.img_size or pretrained_size(config) or size
    lr = config.lr
    if lr is None and config.freeze_backbone and config.optimizer == "sgd":
        # a linear head on fixed features takes a far higher rate than end-to-end training:
        # 0.5 at batch 16 gave 66% instead of 51% (the rule below) at 10 digits per class
        # (benchmarks/few_shot.py); larger batches keep 0.5, where it was measured
        lr = 0.5 * min(1.0, config.batch_size / 16)
    elif lr is None:
        lr = 0.1 * config.batch_size / 128 if config.optimizer == "sgd" else 2e-3
    wd = config.weight_decay
    if wd is None:
        wd = 5e-4 if config.optimizer == "sgd" else 0.05
    return replace(
        config,
        img_size=img_size,
        in_chans=config.in_chans or chans,
        small_input=img_size <= 64 if config.small_input is None else config.small_input,
        lr=lr,
        weight_decay=wd,
        hflip=config.data != "digits" if config.hflip is None else config.hflip,
    )
