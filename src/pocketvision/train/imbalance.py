"""Training on imbalanced classes: class-weighted loss, a balanced sampler, per-class recall.

``--class-weights auto`` weights each class by the inverse of its *effective number* of
samples, (1 - beta^n) / (1 - beta) with beta = 0.999 (Cui, Jia, Lin, Song, Belongie,
"Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019, arXiv:1901.05555):
for small classes it is inverse frequency, and it stops growing once a class has thousands of
images, where more copies add little new. Weights are scaled to sum to the number of classes
(the paper's normalisation). ``--class-weights FILE`` reads a JSON object {label: weight}.

``--sampler balanced`` draws every epoch's indexes with replacement, each class equally likely,
from a generator seeded by (seed, epoch), then splits them over processes exactly as
:class:`torch.utils.data.DistributedSampler` does, so it works unchanged under DDP and a
resumed run replays the same order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler, Sampler

from pocketvision.data import DataSplits, ImageSet
from pocketvision.errors import PocketvisionError
from pocketvision.preprocess import Preprocessing
from pocketvision.train.config import SAMPLERS

__all__ = [
    "SAMPLERS",
    "BalancedDistributedSampler",
    "class_weights",
    "make_sampler",
    "per_class_recall",
    "soft_target_loss",
]

# Cui et al.'s beta; 0.999 is one of the paper's values and suits data sets of 10^2-10^4 images
EFFECTIVE_BETA = 0.999


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Images per class, int64 (num_classes,)."""
    return torch.bincount(labels.cpu(), minlength=num_classes)


def effective_number_weights(counts: torch.Tensor, beta: float = EFFECTIVE_BETA) -> torch.Tensor:
    """Cui et al. 2019: w_c proportional to (1 - beta) / (1 - beta^n_c), summing to C."""
    n = counts.double().clamp(min=1)
    weights = (1 - beta) / (1 - torch.pow(torch.tensor(beta, dtype=torch.float64), n))
    return (weights * len(counts) / weights.sum()).float()


def read_class_weights(path: Path, classes: list[str]) -> torch.Tensor:
    """A JSON object {label: weight} naming every class exactly once, weights finite and > 0."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PocketvisionError(
            f"--class-weights {path}: no such file (give auto, none or a JSON file)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PocketvisionError(f"--class-weights {path}: not a JSON file ({err})") from None
    if not isinstance(data, dict):
        raise PocketvisionError(
            f'--class-weights {path}: expected a JSON object {{"label": weight, ...}}'
        )
    missing = [c for c in classes if c not in data]
    unknown = sorted(set(data) - set(classes))
    if missing or unknown:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unknown {', '.join(unknown)}"] if unknown else []
        raise PocketvisionError(
            f"--class-weights {path}: labels do not match the data's classes "
            f"({'; '.join(parts)}); the classes are {', '.join(classes)}"
        )
    values = [data[c] for c in classes]
    for c, v in zip(classes, values, strict=True):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise PocketvisionError(
                f"--class-weights {path}: weight of {c!r} must be a number > 0, got {v!r}"
            )
    return torch.tensor(values, dtype=torch.float32)


def class_weights(choice: str, labels: torch.Tensor, classes: list[str]) -> torch.Tensor | None:
    """The loss's per-class weights for ``--class-weights`` (None: unweighted)."""
    if choice == "none":
        return None
    if choice == "auto":
        return effective_number_weights(class_counts(labels, len(classes)))
    return read_class_weights(Path(choice).expanduser(), classes)


def soft_target_loss(
    logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy against soft targets (label smoothing, mixup), optionally class-weighted.

    A sample's weight is its target distribution times the class weights (its class's weight
    for a plain label; the mix of both for mixup), and the batch loss is the weighted mean:
    for hard labels exactly ``F.cross_entropy(logits, y, weight=weight)``.
    """
    per_sample = torch.sum(-targets * F.log_softmax(logits.float(), dim=1), dim=1)
    if weight is None:
        return per_sample.mean()
    sample_weight = targets @ weight.to(targets.device, targets.dtype)
    return (per_sample * sample_weight).sum() / sample_weight.sum()


class BalancedDistributedSampler(Sampler[int]):
    """Class-balanced sampling with replacement, with DistributedSampler's interface.

    Every epoch draws ``len(labels)`` indexes (rounded up to a multiple of ``num_replicas``)
    where each class is equally likely and images within a class are equally likely; process
    ``rank`` takes every ``num_replicas``-th index. ``set_epoch`` changes the draw, identically
    on every process.
    """

    def __init__(
        self, labels: torch.Tensor, *, num_replicas: int = 1, rank: int = 0, seed: int = 0
    ) -> None:
        labels = labels.cpu()
        counts = torch.bincount(labels).double()
        present = (counts > 0).sum()
        self.weights = (1.0 / (counts[labels] * present)).double()  # per image; sums to 1
        self.num_replicas, self.rank, self.seed, self.epoch = num_replicas, rank, seed, 0
        self.num_samples = math.ceil(len(labels) / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.total_size, replacement=True, generator=gen)
        return iter(drawn[self.rank : self.total_size : self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples


def per_class_recall(
    labels: torch.Tensor, predictions: torch.Tensor, classes: list[str]
) -> dict[str, Any]:
    """{"recall": {label: recall, or None when the class has no image}, "macro_recall": the
    mean over the classes present}."""
    matrix = confusion(labels, predictions, len(classes))
    support = matrix.sum(1)
    recall = {
        c: (round(float(matrix[i, i] / support[i]), 5) if support[i] else None)
        for i, c in enumerate(classes)
    }
    present = [v for v in recall.values() if v is not None]
    return {"recall": recall, "macro_recall": round(sum(present) / max(1, len(present)), 5)}


def make_sampler(
    choice: str, labels: torch.Tensor, *, num_replicas: int, rank: int, seed: int
) -> DistributedSampler[int] | BalancedDistributedSampler:
    """``--sampler``: shuffle (DistributedSampler: every image once per epoch) or balanced."""
    if choice == "balanced":
        return BalancedDistributedSampler(labels, num_replicas=num_replicas, rank=rank, seed=seed)
    return DistributedSampler(
        cast(Any, range(len(labels))), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed
    )


@torch.no_grad()
def predict_labels(
    model: nn.Module, images: ImageSet, prep: Preprocessing, device: torch.device, batch_size: int
) -> torch.Tensor:
    """The model's top-1 class for every image of a set (int64, on the CPU)."""
    was_training = model.training
    model.eval()
    mean = torch.tensor(prep.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(prep.std, device=device).view(1, -1, 1, 1)
    out = []
    for start in range(0, len(images), batch_size):
        x = images.images[start : start + batch_size].to(device)
        out.append(model((x.float().div_(255) - mean) / std).argmax(1).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def confusion(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts: rows the true class, columns the prediction."""
    n = num_classes
    flat = labels.cpu() * n + predictions.cpu()
    return torch.bincount(flat, minlength=n * n).view(n, n)


def recall_on_held_out(
    model: nn.Module, splits: DataSplits, prep: Preprocessing, device: torch.device, batch_size: int
) -> tuple[dict[str, Any], torch.Tensor]:
    """Per-class recall on the test split (the validation split when there is none), for the
    summary, and its confusion matrix (for the trackers)."""
    split, images = (
        ("test", splits.test)
        if splits.test is not None and len(splits.test)
        else ("val", splits.val)
    )
    predictions = predict_labels(model, images, prep, device, batch_size)
    report = {"split": split, **per_class_recall(images.labels, predictions, splits.classes)}
    return report, confusion(images.labels, predictions, len(splits.classes))
