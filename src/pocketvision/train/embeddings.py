"""A frozen backbone's embeddings, computed once and cached: the Turi Create / Create ML method.

With --freeze-backbone only the classifier head learns, so every image's features can be
computed once (eval mode, no gradients, batched on the training device) and the head trained
on them for as many epochs as wanted, with no backbone pass per step: 100 head epochs over
1,000 images took 1.15 s on 2 shared cores after a 0.42 s embedding pass (mobilenet_v1_050 at
28 px; benchmarks/results/few_shot.json).

The cache lives in ``$POCKETVISION_HOME/embeddings/SPACE/`` (default ``~/.cache/pocketvision``).
SPACE is a hash of everything but the image that changes an embedding: the model's name and
build keywords, the sha256 of the backbone's tensors (whatever --pretrained, --init or a
resumed run put there) and the preprocessing (input size, mean, std). Each ``*.emb`` shard in
it holds rows keyed by the sha256 of an image's decoded pixels and its copy: 0 is the image
itself, k the k-th fixed augmented copy (--embed-augment), drawn from a generator seeded by the
image, --seed and the --augment preset. Shards are written to a temp file and renamed, and
carry the sha256 of their payload: a truncated or damaged shard (a process killed in the
middle of writing one) is reported in one line, removed and its rows recomputed, never used.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pocketvision.data import DataSplits
from pocketvision.data.augment import PRESETS, AugmentPreset, augment_batch, random_erase
from pocketvision.files import pocketvision_home, write_atomic, write_json
from pocketvision.preprocess import Preprocessing
from pocketvision.rundir import ModelSpec, save_weights
from pocketvision.train.config import TrainConfig

FORMAT = 1
MAGIC = b"PVEMB01\n"  # 8 bytes, then a uint32 header length, the JSON header, the payload
SUFFIX = ".emb"
KEY_BYTES = 32  # a sha256 digest per row


def cache_root() -> Path:
    return pocketvision_home() / "embeddings"


def randomises(preset: AugmentPreset, hflip: bool) -> bool:
    """True when ``preset`` (with flips allowed or not) changes the backbone's input per step."""
    p = preset
    return bool(
        p.translate > 0
        or p.scale < 1
        or p.rotate > 0
        or (p.hflip > 0 and hflip)
        or p.brightness > 0
        or p.contrast > 0
        or p.saturation > 0
        or p.erase > 0
        or p.mix > 0
    )


def wanted(config: TrainConfig, world: int) -> tuple[bool, str | None]:
    """Whether this run trains its head on cached embeddings, and a line to show about it.

    On by default with --freeze-backbone whenever that is the same training: the backbone's
    input is not randomly augmented (--augment none, or flips off), or --embed-augment gives
    fixed augmented copies. --embeddings forces it, --no-embeddings turns it off.
    """
    if not config.freeze_backbone or config.embeddings is False:
        return False, None
    if world > 1:
        return False, "--freeze-backbone in a distributed run: the backbone runs every step"
    if randomises(PRESETS[config.augment], bool(config.hflip)) and not config.embed_augment:
        if config.embeddings is None:
            return False, (
                f"--freeze-backbone with --augment {config.augment}: the backbone runs every "
                "step; --augment none or --embed-augment N trains the head on cached "
                "embeddings instead, in seconds"
            )
        return True, (
            f"--embeddings: --augment {config.augment} is not applied to the cached embeddings; "
            "--embed-augment N adds N fixed augmented copies per image"
        )
    return True, None


def linear_head(model: nn.Module, head_ids: set[int]) -> tuple[str, nn.Linear] | None:
    """The nn.Linear that holds exactly the head's parameters, with its name; None if none."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and {id(p) for p in module.parameters()} == head_ids:
            return name, module
    return None


def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The embedding the head classifies: pooled features, (N, D)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)  # type: ignore[operator]


@torch.no_grad()
def head_matches(model: nn.Module, head: nn.Module, x: torch.Tensor) -> bool:
    """True when ``head(features(x))`` is the model's output (eval mode): the head is a linear
    layer on the pooled features, so training it on embeddings trains the model."""
    was_training = model.training
    model.eval()
    full = model(x).float()
    via = head(features(model, x)).float()
    model.train(was_training)
    scale = max(1.0, float(full.abs().max()))
    return torch.allclose(full, via, rtol=1e-4, atol=1e-4 * scale)


def backbone_sha256(model: nn.Module, head_name: str) -> str:
    """sha256 of every tensor of the model but the head's: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if name.startswith(head_name + "."):
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def space(model_name: str, kwargs: dict[str, Any], backbone: str, prep: Preprocessing) -> dict:
    """What, besides the image, an embedding depends on (the cache folder's description)."""
    build = {k: v for k, v in sorted(kwargs.items()) if k != "num_classes"}
    return {
        "format": FORMAT,
        "model": model_name,
        "kwargs": build,
        "backbone_sha256": backbone,
        "preprocessing": asdict(prep),
    }


def space_id(description: dict[str, Any]) -> str:
    """The cache folder's name: a hash of :func:`space`'s description."""
    text = json.dumps(description, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def image_digests(images: torch.Tensor) -> list[bytes]:
    """sha256 of each uint8 (C, H, W) image's shape and pixels."""
    array = images.contiguous().numpy()
    shape = str(tuple(array.shape[1:])).encode()
    return [hashlib.sha256(shape + a.tobytes()).digest() for a in array]


def augment_tag(config: TrainConfig) -> str:
    """Identifies the recipe of the augmented copies: preset values, flips and seed."""
    preset = asdict(PRESETS[config.augment])
    return json.dumps({"preset": preset, "hflip": bool(config.hflip), "seed": config.seed})


def row_key(image: bytes, copy: int, tag: str) -> bytes:
    """The cache key of one image's copy (0: the image, k > 0: the k-th augmented copy)."""
    suffix = b":0" if copy == 0 else f":{copy}:{tag}".encode()
    return hashlib.sha256(image + suffix).digest()


def _copy_seed(key: bytes) -> int:
    return int.from_bytes(key[:8], "little") & ((1 << 63) - 1)


class CorruptShard(Exception):
    """A shard file that cannot be trusted; its message is the reason."""


def encode_shard(keys: list[bytes], emb: torch.Tensor) -> bytes:
    vectors = emb.detach().float().cpu().contiguous().numpy().astype("<f4")
    payload = b"".join(keys) + vectors.tobytes()
    header = {"rows": len(keys), "dim": int(emb.shape[1]), "sha256": _sha(payload)}
    head = json.dumps(header).encode()
    return MAGIC + struct.pack("<I", len(head)) + head + payload


def decode_shard(data: bytes) -> tuple[list[bytes], torch.Tensor]:
    """(row keys, float32 (rows, dim)); CorruptShard when anything does not add up."""
    if data[: len(MAGIC)] != MAGIC:
        raise CorruptShard("not an embedding cache file")
    start = len(MAGIC) + 4
    if len(data) < start:
        raise CorruptShard(f"truncated at {len(data)} bytes")
    (head_len,) = struct.unpack("<I", data[len(MAGIC) : start])
    try:
        header = json.loads(data[start : start + head_len])
        rows, dim, sha = int(header["rows"]), int(header["dim"]), str(header["sha256"])
    except (ValueError, KeyError, TypeError):
        raise CorruptShard("unreadable header") from None
    payload = data[start + head_len :]
    expected = rows * (KEY_BYTES + 4 * dim)
    if rows < 0 or dim < 1 or len(payload) != expected:
        raise CorruptShard(f"truncated: payload {len(payload)} of {expected} bytes")
    if _sha(payload) != sha:
        raise CorruptShard("checksum mismatch")
    keys = [payload[i * KEY_BYTES : (i + 1) * KEY_BYTES] for i in range(rows)]
    vectors = np.frombuffer(payload, dtype="<f4", offset=rows * KEY_BYTES).reshape(rows, dim)
    return keys, torch.from_numpy(vectors.astype(np.float32))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class EmbeddingCache:
    """One SPACE folder: every row of its shards by key; new rows go to a new shard."""

    def __init__(self, folder: Path, report: Callable[[str], None]) -> None:
        self.folder = folder
        self.report = report
        self.rows: dict[bytes, torch.Tensor] = {}
        self.corrupt = 0
        for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
            try:
                keys, vectors = decode_shard(path.read_bytes())
            except (CorruptShard, OSError) as err:
                self.report(f"{path}: corrupt embedding cache file ({err}); removed, recomputing")
                path.unlink(missing_ok=True)
                self.corrupt += 1
                continue
            self.rows.update(zip(keys, vectors, strict=True))

    def add(self, keys: list[bytes], emb: torch.Tensor) -> None:
        """Write ``keys``' embeddings as one new shard (atomically) and remember them."""
        if not keys:
            return
        data = encode_shard(keys, emb)
        write_atomic(self.folder / f"{_sha(data)[:20]}{SUFFIX}", data)
        self.rows.update(zip(keys, emb.detach().float().cpu(), strict=True))


@dataclass
class Embedded:
    """Training and validation embeddings on the device, and how they were obtained."""

    train: torch.Tensor  # (N * (1 + copies), D): every image, then each augmented copy
    train_labels: torch.Tensor
    val: torch.Tensor  # (M, D)
    val_labels: torch.Tensor
    record: dict[str, Any]


@dataclass(frozen=True)
class _Job:
    """What embedding a batch of rows needs besides the rows."""

    model: nn.Module
    prep: Preprocessing
    preset: AugmentPreset
    hflip: bool
    device: torch.device
    channels_last: bool


def _inputs(job: _Job, images: torch.Tensor, copies: list[int], keys: list[bytes]) -> torch.Tensor:
    """Normalised float batch of the rows' images, each augmented copy with its own generator."""
    x = images.float().div_(255)
    gens = {
        j: torch.Generator().manual_seed(_copy_seed(keys[j])) for j, c in enumerate(copies) if c
    }
    for j, gen in gens.items():
        x[j : j + 1] = augment_batch(x[j : j + 1], job.preset, gen, hflip=job.hflip)
    mean = torch.tensor(job.prep.mean).view(1, -1, 1, 1)
    std = torch.tensor(job.prep.std).view(1, -1, 1, 1)
    x = (x - mean) / std
    if job.preset.erase > 0:
        for j, gen in gens.items():  # after normalising: erased pixels are the data's mean
            x[j : j + 1] = random_erase(x[j : j + 1], job.preset.erase, gen)
    return x


@torch.no_grad()
def _compute(
    job: _Job,
    images: torch.Tensor,
    todo: list[tuple[int, int, bytes]],
    cache: EmbeddingCache,
    batch_size: int,
    flush_seconds: float,
) -> None:
    """Embed the (image index, copy, key) rows in batches; a shard every ``flush_seconds``."""
    job.model.eval()
    keys: list[bytes] = []
    parts: list[torch.Tensor] = []
    last = time.monotonic()
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        idx = torch.tensor([i for i, _, _ in rows])
        x = _inputs(job, images[idx], [c for _, c, _ in rows], [k for _, _, k in rows])
        x = x.to(job.device)
        if job.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        parts.append(features(job.model, x).float().cpu())
        keys += [k for _, _, k in rows]
        if time.monotonic() - last > flush_seconds:  # a killed pass keeps what it finished
            cache.add(keys, torch.cat(parts))
            keys, parts, last = [], [], time.monotonic()
    if keys:
        cache.add(keys, torch.cat(parts))


def plan(
    config: TrainConfig, world: int, model: nn.Module, head_ids: set[int], sample: torch.Tensor
) -> tuple[str | None, str | None]:
    """(name of the head module to train on embeddings, or None; a line to show, or None).

    Args:
        sample: A few normalised training images, to check that the head is a linear layer
            on the pooled features (SqueezeNet's conv classifier, for one, is not).
    """
    use, note = wanted(config, world)
    if not use:
        return None, note
    found = linear_head(model, head_ids)
    if found is None or not head_matches(model, found[1], sample):
        return None, (
            f"--freeze-backbone: {config.model}'s classifier is not one linear layer on its "
            "pooled features, so the backbone runs every step"
        )
    return found[0], note


def describe(record: dict[str, Any]) -> str:
    """The line a run shows about its embedding pass."""
    return (
        f"embeddings: {record['rows']} rows of {record['dim']} ({record['computed']} computed, "
        f"{record['reused']} from the cache) in {record['seconds']:.1f} s -> {record['cache']}; "
        "training the head only"
    )


def embed_splits(
    model: nn.Module,
    head_name: str,
    spec: ModelSpec,
    splits: DataSplits,
    prep: Preprocessing,
    config: TrainConfig,
    device: torch.device,
    channels_last: bool,
    report: Callable[[str], None],
) -> Embedded:
    """The training images' (and their augmented copies') and the val images' embeddings,
    from the cache where it has them, computed and added to it where not."""
    t0 = time.perf_counter()
    description = space(spec.name, spec.kwargs, backbone_sha256(model, head_name), prep)
    folder = cache_root() / space_id(description)
    cache = EmbeddingCache(folder, report)
    if not (folder / "space.json").exists():
        write_json(folder / "space.json", description)
    tag = augment_tag(config)
    job = _Job(model, prep, PRESETS[config.augment], bool(config.hflip), device, channels_last)
    copies = range(1 + config.embed_augment)
    sets = {"train": (splits.train, copies), "val": (splits.val, range(1))}
    keys: dict[str, list[bytes]] = {}
    computed = reused = 0
    for name, (images, set_copies) in sets.items():
        digests = image_digests(images.images)
        rows = [(i, c, row_key(d, c, tag)) for c in set_copies for i, d in enumerate(digests)]
        todo = [r for r in rows if r[2] not in cache.rows]
        computed, reused = computed + len(todo), reused + len(rows) - len(todo)
        _compute(job, images.images, todo, cache, config.eval_batch_size, config.checkpoint_seconds)
        keys[name] = [k for _, _, k in rows]
    train = torch.stack([cache.rows[k] for k in keys["train"]]).to(device)
    val = (
        torch.stack([cache.rows[k] for k in keys["val"]]).to(device)
        if keys["val"]
        else torch.zeros(0, train.shape[1], device=device)
    )
    record = {
        "cache": str(folder),
        "rows": len(keys["train"]) + len(keys["val"]),
        "computed": computed,
        "reused": reused,
        "corrupt_files": cache.corrupt,
        "augmented_copies": config.embed_augment,
        "dim": int(train.shape[1]),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    labels = splits.train.labels.repeat(len(copies)).to(device)
    return Embedded(train, labels, val, splits.val.labels.to(device), record)


@torch.no_grad()
def evaluate_head(
    head: nn.Module, emb: torch.Tensor, labels: torch.Tensor, batch_size: int = 4096
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of the head on embeddings: the model's on the images."""
    was_training = head.training
    head.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(emb), batch_size):
        logits = head(emb[start : start + batch_size]).float()
        y = labels[start : start + batch_size]
        loss_sum += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    head.train(was_training)
    n = max(1, len(emb))
    return loss_sum / n, correct / n


def save_with_head(
    model: nn.Module, head: nn.Module, head_state: dict[str, torch.Tensor], path: Path
) -> None:
    """Save ``model`` with ``head_state`` in its head (the best epoch's), leaving it as it was."""
    current = {k: v.clone() for k, v in head.state_dict().items()}
    head.load_state_dict(head_state)
    try:
        save_weights(model, path)
    finally:
        head.load_state_dict(current)
