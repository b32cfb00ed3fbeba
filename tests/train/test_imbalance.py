"""Class imbalance pieces against their definitions: effective-number weights (Cui et al.
2019), the weighted loss against torch's own weighted cross-entropy, the balanced sampler's
class frequencies and its DistributedSampler-style split, recall against scikit-learn."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import recall_score

from pocketvision.cli import main
from pocketvision.errors import PocketvisionError
from pocketvision.train import TrainConfig, train
from pocketvision.train.imbalance import (
    BalancedDistributedSampler,
    class_weights,
    effective_number_weights,
    per_class_recall,
    read_class_weights,
    soft_target_loss,
)


def test_effective_number_weights_follow_the_paper() -> None:
    counts = torch.tensor([1000, 100, 10])
    w = effective_number_weights(counts, beta=0.999)
    expected = torch.tensor([(1 - 0.999) / (1 - 0.999**n) for n in (1000, 100, 10)])
    expected = expected * 3 / expected.sum()
    assert torch.allclose(w, expected.float(), rtol=1e-5)
    assert float(w.sum()) == pytest.approx(3.0)
    # small classes: close to inverse frequency (9.6x for 10x fewer); large ones saturate (6.6x)
    assert float(w[2] / w[1]) == pytest.approx(9.57, abs=0.01)
    assert float(w[1] / w[0]) == pytest.approx(6.64, abs=0.01)


def test_weighted_soft_loss_equals_torch_weighted_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 4, generator=gen)
    y = torch.randint(0, 4, (32,), generator=gen)
    weight = torch.tensor([1.0, 3.0, 0.5, 2.0])
    onehot = F.one_hot(y, 4).float()
    assert torch.allclose(
        soft_target_loss(logits, onehot, weight), F.cross_entropy(logits, y, weight=weight)
    )
    assert torch.allclose(soft_target_loss(logits, onehot), F.cross_entropy(logits, y))


def test_auto_weights_come_from_the_training_labels() -> None:
    labels = torch.tensor([0] * 100 + [1] * 10)
    w = class_weights("auto", labels, ["many", "few"])
    assert w is not None and float(w[1] / w[0]) == pytest.approx(9.57, abs=0.01)
    assert class_weights("none", labels, ["many", "few"]) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"cat": 1.0}, "missing dog"),
        ({"cat": 1.0, "dog": 2.0, "cow": 1.0}, "unknown cow"),
        ({"cat": 1.0, "dog": 0}, "weight of 'dog' must be a number > 0"),
        ({"cat": 1.0, "dog": "x"}, "weight of 'dog'"),
        ([1.0, 2.0], "expected a JSON object"),
    ],
)
def test_a_weights_file_that_does_not_fit_is_one_line(
    tmp_path: Path, content: object, message: str
) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps(content))
    with pytest.raises(PocketvisionError, match=message) as err:
        read_class_weights(path, ["cat", "dog"])
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_weights_file_is_read_in_class_order(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text('{"dog": 4, "cat": 0.5}')
    assert read_class_weights(path, ["cat", "dog"]).tolist() == [0.5, 4.0]
    path.write_text("not json")
    with pytest.raises(PocketvisionError, match="not a JSON file"):
        read_class_weights(path, ["cat", "dog"])


def test_balanced_sampler_draws_classes_equally_and_splits_like_distributed_sampler() -> None:
    labels = torch.tensor([0] * 1000 + [1] * 100 + [2] * 10)
    sampler = BalancedDistributedSampler(labels, seed=3)
    drawn = Counter(labels[list(sampler)].tolist())
    assert len(sampler) == sampler.num_samples == 1110
    for c in range(3):  # each class ~370 of 1110; binomial sd ~16
        assert abs(drawn[c] - 370) < 80, drawn
    # two processes: disjoint interleaved shares of one draw, same on every process
    ranks = [BalancedDistributedSampler(labels, num_replicas=2, rank=r, seed=3) for r in range(2)]
    shares = [list(s) for s in ranks]
    assert [len(s) for s in shares] == [555, 555]
    merged = [i for pair in zip(*shares, strict=True) for i in pair]
    assert merged == list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != merged  # a new draw each epoch...
    sampler.set_epoch(0)
    assert list(sampler) == merged  # ...and the same one again for the same epoch (resume)


def test_per_class_recall_matches_scikit_learn() -> None:
    gen = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (200,), generator=gen)
    p = torch.where(
        torch.rand(200, generator=gen) < 0.7, y, torch.randint(0, 3, (200,), generator=gen)
    )
    got = per_class_recall(y, p, ["a", "b", "c"])
    want = recall_score(y.numpy(), p.numpy(), average=None)
    assert list(got["recall"].values()) == pytest.approx(list(want), abs=1e-5)  # type: ignore[union-attr]
    assert got["macro_recall"] == pytest.approx(want.mean(), abs=1e-5)


def _write_class(folder: Path, n: int, level: float, rng: np.random.Generator) -> None:
    """Grayscale PNGs whose mean brightness is ``level`` + N(0, 0.1): two such classes 0.16
    apart overlap (about 79% separable), so a classifier's prior decides the border."""
    folder.mkdir(parents=True)
    for i in range(n):
        pixels = np.clip(level + rng.normal(0, 0.1) + rng.normal(0, 0.1, (16, 16)), 0, 1)
        Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train: 200 'many' and 20 'few' images (10:1); test: 50 of each."""
    root = tmp_path_factory.mktemp("imbalanced")
    for split, n_many, n_few, seed in (("train", 200, 20, 0), ("test", 50, 50, 1)):
        rng = np.random.default_rng(seed)
        _write_class(root / split / "many", n_many, 0.42, rng)
        _write_class(root / split / "few", n_few, 0.58, rng)
    return root


def _macro_recall(data: Path, out: Path, **options: str) -> dict:
    config = TrainConfig(
        data=str(data), model="lenet5", img_size=32, in_chans=1, epochs=10, batch_size=32,
        augment="none", val_fraction=0.2, out=str(out), quiet=True, threads=1,
        checkpoint_seconds=1e9, **options,
    )  # fmt: skip
    return train(config)["per_class_recall"]


def test_balancing_raises_macro_recall_on_a_10_to_1_folder(
    imbalanced: Path, tmp_path: Path
) -> None:
    plain = _macro_recall(imbalanced, tmp_path / "plain")
    weighted = _macro_recall(imbalanced, tmp_path / "weighted", class_weights="auto")
    sampled = _macro_recall(imbalanced, tmp_path / "sampled", sampler="balanced")
    assert plain["split"] == "test" and set(plain["recall"]) == {"few", "many"}
    # unweighted, the 10:1 prior pushes the border into the small class
    assert plain["recall"]["few"] < 0.3 and plain["recall"]["many"] > 0.9
    assert weighted["macro_recall"] > plain["macro_recall"] + 0.1
    assert sampled["macro_recall"] > plain["macro_recall"] + 0.1
    assert weighted["recall"]["few"] > plain["recall"]["few"] + 0.2


def test_a_weights_file_for_other_labels_exits_2(
    imbalanced: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "weights.json"
    weights.write_text('{"many": 1, "rare": 10}')
    argv = ["train", "--data", str(imbalanced), "--model", "lenet5", "--img-size", "32",
            "--epochs", "1", "--quiet", "--out", str(tmp_path / "run"),
            "--class-weights", str(weights)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "labels do not match" in err and "missing few" in err and "unknown rare" in err
