"""--freeze-backbone on cached embeddings: reuse, cache keys, corrupt files, export, resume."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pocketvision import create_model
from pocketvision.data import load_data
from pocketvision.preprocess import Preprocessing
from pocketvision.rundir import load_run
from pocketvision.train import TrainConfig, evaluate_set, train
from pocketvision.train import embeddings as emb

QUICK = {"quiet": True, "checkpoint_seconds": 1e9, "threads": 1}


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LeNet-5 briefly trained on digits, its weights copied away from the run (so a run that
    starts from them gets a fresh head, as from a backbone trained on other classes)."""
    root = tmp_path_factory.mktemp("backbone")
    train(
        TrainConfig(
            data="digits", model="lenet5", epochs=4, batch_size=32, out=str(root / "r"), **QUICK
        )
    )
    path = root / "lenet5.safetensors"
    shutil.copy(root / "r" / "checkpoints" / "best.safetensors", path)
    return path


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("POCKETVISION_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "embeddings"


def _probe(backbone: Path, out: Path, **kw: object) -> TrainConfig:
    base = TrainConfig(
        data="digits",
        model="lenet5",
        init=str(backbone),
        freeze_backbone=True,
        augment="none",
        epochs=30,
        batch_size=32,
        train_limit=300,
        out=str(out),
        **QUICK,  # type: ignore[arg-type]
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _shards(home: Path) -> list[Path]:
    return sorted(home.glob("*/*.emb"))


def test_head_trains_on_cached_embeddings_and_is_the_model(
    backbone: Path, home: Path, tmp_path: Path
) -> None:
    first = train(_probe(backbone, tmp_path / "a"))
    record = first["embeddings"]
    n_train, n_val = first["num_train"], first["num_val"]
    assert record["rows"] == n_train + n_val == record["computed"] and record["reused"] == 0
    shards = _shards(home)
    assert len(shards) == 2  # train and val, one shard each
    # learning, not chance (10%): a linear head on a briefly trained LeNet's F6 features
    assert first["test_accuracy"] > 0.8
    # the saved model (backbone + trained head) scores what the head scored on embeddings
    run = load_run(tmp_path / "a")
    splits = load_data("digits", run.preprocessing, val_fraction=0.1, seed=0)
    _, val_acc = evaluate_set(run.model, splits.val, run.preprocessing, torch.device("cpu"))
    assert val_acc == pytest.approx(first["best_val_accuracy"], abs=1e-5)
    # only the head moved: every backbone tensor is the --init file's
    start, best = (
        load_file(str(backbone)),
        load_file(str(tmp_path / "a/checkpoints/best.safetensors")),
    )
    moved = {k for k in best if not torch.equal(best[k], start[k])}
    assert moved == {"classifier.weight", "classifier.bias"}

    second = train(_probe(backbone, tmp_path / "b"))
    assert second["embeddings"]["computed"] == 0  # no backbone pass: every row from the cache
    assert second["embeddings"]["reused"] == n_train + n_val
    assert _shards(home) == shards
    assert second["best_val_accuracy"] == first["best_val_accuracy"]
    assert second["test_accuracy"] == first["test_accuracy"]

    # opting out trains through the backbone, as before
    plain = train(_probe(backbone, tmp_path / "c", embeddings=False, epochs=1))
    assert "embeddings" not in plain


def test_corrupt_cache_file_is_reported_and_recomputed(
    backbone: Path, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = train(_probe(backbone, tmp_path / "a", epochs=5))
    shards = _shards(home)
    big = max(shards, key=lambda p: p.stat().st_size)  # the training rows
    data = big.read_bytes()
    big.write_bytes(data[: len(data) // 2])  # a writer killed halfway (no temp + rename)
    again = train(_probe(backbone, tmp_path / "b", epochs=5, quiet=False))
    lines = [line for line in capsys.readouterr().out.splitlines() if "corrupt embedding" in line]
    assert len(lines) == 1 and str(big) in lines[0] and "truncated" in lines[0]
    record = again["embeddings"]
    assert record["corrupt_files"] == 1 and record["computed"] == first["num_train"]
    assert again["best_val_accuracy"] == first["best_val_accuracy"]
    # the recomputed shard is whole again: byte for byte the first one (names are content hashes)
    assert _shards(home) == shards and big.read_bytes() == data


def test_damaged_bytes_are_caught_by_the_checksum(tmp_path: Path) -> None:
    keys = [emb.row_key(bytes([i]) * 32, 0, "") for i in range(5)]
    vectors = torch.randn(5, 7)
    cache = emb.EmbeddingCache(tmp_path, report=print)
    cache.add(keys, vectors)
    (path,) = tmp_path.glob("*.emb")
    assert torch.equal(emb.EmbeddingCache(tmp_path, report=print).rows[keys[3]], vectors[3])
    data = bytearray(path.read_bytes())
    data[-10:-6] = b"\xff\xff\xff\x7f"  # same length, one float changed
    path.write_bytes(bytes(data))
    reports: list[str] = []
    reread = emb.EmbeddingCache(tmp_path, report=reports.append)
    assert reread.rows == {} and reread.corrupt == 1 and not path.exists()
    assert len(reports) == 1 and "checksum mismatch" in reports[0]
    path.write_bytes(b"garbage that is no cache file")
    reports.clear()
    assert emb.EmbeddingCache(tmp_path, report=reports.append).rows == {}
    assert "not an embedding cache file" in reports[0]


def test_cache_key_changes_with_image_weights_and_preprocessing() -> None:
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10)
    prep = Preprocessing((1, 32, 32), (0.5,), (0.5,))
    kwargs = {"num_classes": 10, "in_chans": 1}

    def key(m: torch.nn.Module, p: Preprocessing, kw: dict) -> str:
        return emb.space_id(emb.space("lenet5", kw, emb.backbone_sha256(m, "classifier"), p))

    base = key(model, prep, kwargs)
    assert key(model, prep, kwargs) == base
    assert key(model, prep, {**kwargs, "num_classes": 3}) == base  # the head is not embedded
    assert key(model, replace(prep, mean=(0.4,)), kwargs) != base
    assert key(model, replace(prep, input_size=(1, 28, 28)), kwargs) != base
    assert key(model, prep, {**kwargs, "small_input": True}) != base
    with torch.no_grad():
        model.classifier.weight.add_(1.0)  # the head's weights do not change the embedding
    assert key(model, prep, kwargs) == base
    with torch.no_grad():
        model.features[0].weight[0, 0, 0, 0] += 1e-3
    assert key(model, prep, kwargs) != base

    images = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    images[1, 0, 3, 3] = 1
    a, b = emb.image_digests(images)
    assert a != b and emb.image_digests(images[:1]) == [a]
    tag = emb.augment_tag(TrainConfig(augment="light", seed=0))
    keys = {emb.row_key(a, 0, tag), emb.row_key(a, 1, tag), emb.row_key(a, 2, tag)}
    keys.add(emb.row_key(a, 1, emb.augment_tag(TrainConfig(augment="light", seed=1))))
    keys.add(emb.row_key(a, 1, emb.augment_tag(TrainConfig(augment="standard", seed=0))))
    assert len(keys) == 5
    assert emb.row_key(a, 0, tag) == emb.row_key(a, 0, "")  # the image itself: no recipe


def test_augmented_copies_are_fixed_and_cached(backbone: Path, home: Path, tmp_path: Path) -> None:
    config = _probe(backbone, tmp_path / "a", augment="light", embed_augment=2, epochs=3)
    first = train(config)
    n_train, n_val = first["num_train"], first["num_val"]
    assert first["embeddings"]["rows"] == 3 * n_train + n_val == first["embeddings"]["computed"]
    again = train(replace(config, out=str(tmp_path / "b")))
    assert again["embeddings"]["computed"] == 0
    assert again["best_val_accuracy"] == first["best_val_accuracy"]
    # another recipe makes other copies; the images themselves come from the cache
    other = train(replace(config, out=str(tmp_path / "c"), augment="erase"))
    assert other["embeddings"]["computed"] == 2 * other["num_train"]


def test_a_frozen_backbone_gets_the_head_learning_rate() -> None:
    # measured in benchmarks/few_shot.py: 0.5 at batch 16, where the full-training rule gives
    # 0.0125 and undertrains a linear head (51% instead of 66% at 10 images per class)
    from pocketvision.train.config import resolve

    def lr(**kw: object) -> float | None:
        return resolve(TrainConfig(data="digits", **kw)).lr  # type: ignore[arg-type]

    assert lr(freeze_backbone=True, batch_size=16) == lr(freeze_backbone=True) == 0.5
    assert lr(freeze_backbone=True, batch_size=8) == 0.25
    assert lr(batch_size=16) == pytest.approx(0.0125)
    assert lr(freeze_backbone=True, batch_size=16, optimizer="adamw") == 2e-3
    assert lr(freeze_backbone=True, lr=0.1) == 0.1


def test_when_the_embedding_path_is_taken() -> None:
    frozen = TrainConfig(data="digits", freeze_backbone=True, hflip=False)
    assert emb.wanted(replace(frozen, augment="none"), 1) == (True, None)
    assert emb.wanted(replace(frozen, augment="flip"), 1) == (True, None)  # flips are off
    use, note = emb.wanted(replace(frozen, augment="standard"), 1)
    assert not use and note is not None and "--embed-augment" in note
    assert emb.wanted(replace(frozen, augment="standard", embed_augment=3), 1)[0]
    assert emb.wanted(replace(frozen, augment="standard", embeddings=True), 1)[0]
    assert not emb.wanted(replace(frozen, augment="none", embeddings=False), 1)[0]
    assert not emb.wanted(replace(frozen, augment="none"), 2)[0]
    assert not emb.wanted(replace(frozen, freeze_backbone=False, augment="none"), 1)[0]


@pytest.mark.parametrize(("name", "head"), [("lenet5", "classifier"), ("squeezenet1_1", None)])
def test_plan_needs_a_linear_head_on_pooled_features(name: str, head: str | None) -> None:
    model = create_model(name, num_classes=4, in_chans=1, small_input=True)
    before = {id(p) for p in model.parameters()}
    model.reset_classifier(4)  # type: ignore[operator]
    head_ids = {id(p) for p in model.parameters()} - before
    config = TrainConfig(model=name, freeze_backbone=True, augment="none")
    found, note = emb.plan(config, 1, model, head_ids, torch.randn(2, 1, 32, 32))
    assert found == head
    assert (note is None) == (head is not None)


def test_embedding_run_exports_to_onnx_and_agrees(
    backbone: Path, home: Path, tmp_path: Path
) -> None:
    from pocketvision.export import export_run

    train(_probe(backbone, tmp_path / "a", epochs=5))
    report = export_run(
        tmp_path / "a", formats="onnx", quantize="none", verify_images=100, codegen=False
    )
    (row,) = [r for r in report.results if r.format == "onnx"]
    assert row.status == "ok" and row.top1_agreement == 1.0
    assert row.max_abs_diff is not None and row.max_abs_diff < 1e-4


class _Killed(Exception):
    pass


def test_resume_after_a_kill_during_head_training_matches(
    backbone: Path, home: Path, tmp_path: Path
) -> None:
    config = _probe(backbone, tmp_path / "clean", epochs=8, checkpoint_seconds=0.0)
    clean = train(config)

    def die(epoch: int, row: dict[str, float]) -> None:
        if epoch == 5:
            raise _Killed

    killed = replace(config, out=str(tmp_path / "killed"))
    with pytest.raises(_Killed):
        train(killed, on_epoch=die)
    state = torch.load(tmp_path / "killed/checkpoints/last.pt", weights_only=True)
    assert state["state"]["epoch"] == 4  # the last epoch end written before the kill
    resumed = train(replace(killed, resume=True))
    assert resumed["embeddings"]["computed"] == 0
    history = [json.loads(x) for x in (tmp_path / "killed/metrics.jsonl").read_text().splitlines()]
    reference = [json.loads(x) for x in (tmp_path / "clean/metrics.jsonl").read_text().splitlines()]
    drop = ("seconds", "elapsed", "images_per_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in history] == [
        {k: v for k, v in r.items() if k not in drop} for r in reference
    ]
    assert resumed["test_accuracy"] == clean["test_accuracy"]
