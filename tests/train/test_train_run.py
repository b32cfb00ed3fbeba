"""train(): a complete run directory, accuracy that means learning, transfer, early stopping."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pocketvision.rundir import load_run
from pocketvision.train import TrainConfig, evaluate_set, train

QUICK = {"quiet": True, "checkpoint_seconds": 1e9, "threads": 1}


def test_digits_run_directory_is_complete_and_loadable(tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = train(
        TrainConfig(data="digits", model="lenet5", epochs=8, batch_size=64, out=str(out), **QUICK)
    )
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert names == {
        "config.json",
        "labels.txt",
        "preprocessing.json",
        "model.json",
        "checkpoints/best.safetensors",
        "checkpoints/last.pt",
        "metrics.jsonl",
        "metrics.csv",
        "summary.json",
        "bad_files.txt",
    }
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    for key in ("best_val_accuracy", "test_accuracy", "epochs", "seconds", "images_per_s"):
        assert summary[key] is not None, key
    assert summary["num_bad_files"] == 0 and summary["epochs"] == 8
    # learning, not chance (10%): LeNet-5 reaches ~95% on digits in a few seconds
    assert summary["test_accuracy"] > 0.85 and summary["best_val_accuracy"] > 0.85
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    with (out / "metrics.csv").open() as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == list(range(1, 9)) and len(csv_rows) == 8
    for key in ("train_loss", "val_accuracy", "lr", "images_per_s", "seconds"):
        assert key in rows[0] and key in csv_rows[0]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    config = json.loads((out / "config.json").read_text())
    assert config["data"] == "digits" and config["img_size"] == 32 and config["lr"] == 0.05
    # consumers rebuild the model from the folder and get the recorded accuracy back
    run = load_run(out)
    from pocketvision.data import load_data

    splits = load_data(
        config["data"], run.preprocessing, val_fraction=config["val_fraction"], seed=config["seed"]
    )
    _, acc = evaluate_set(run.model, splits.test, run.preprocessing, torch.device("cpu"))  # type: ignore[arg-type]
    assert acc == pytest.approx(summary["test_accuracy"], abs=1e-4)
    assert run.labels == [str(i) for i in range(10)]


def test_test_split_is_scored_in_the_precision_and_layout_val_was(tmp_path: Path) -> None:
    # bf16 autocast and channels_last on a CPU: the recorded test loss is the one measured
    # that way (as val's is every epoch), not a float32 NCHW one
    from pocketvision.data import load_data

    out = tmp_path / "run"
    summary = train(TrainConfig(data="digits", model="lenet5", epochs=1, batch_size=64,
                                amp=True, channels_last=True, out=str(out), **QUICK))  # fmt: skip
    run = load_run(out)
    config = json.loads((out / "config.json").read_text())
    test = load_data("digits", run.preprocessing, val_fraction=config["val_fraction"],
                     seed=config["seed"]).test  # fmt: skip
    model = run.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    cpu = torch.device("cpu")
    alike = evaluate_set(model, test, run.preprocessing, cpu, 512, True, torch.bfloat16)  # type: ignore[arg-type]
    fp32 = evaluate_set(model, test, run.preprocessing, cpu)  # type: ignore[arg-type]
    assert round(alike[0], 5) == summary["test_loss"]
    assert round(fp32[0], 5) != summary["test_loss"]  # the two really differ


def test_ema_and_strong_augmentation_with_mixing_train(tmp_path: Path) -> None:
    out = tmp_path / "ema"
    summary = train(
        TrainConfig(
            data="digits",
            model="lenet5",
            epochs=6,
            batch_size=32,
            augment="strong",
            ema=True,
            ema_decay=0.99,
            optimizer="adamw",
            out=str(out),
            **QUICK,
        )
    )
    assert summary["best_val_accuracy"] > 0.5
    state = torch.load(out / "checkpoints/last.pt", weights_only=True)
    # the EMA trails the raw weights
    assert not all(torch.equal(state["ema"][k], v) for k, v in state["model"].items())
    if summary["best_epoch"] == summary["epochs"]:
        # and best.safetensors holds the EMA weights, not the raw ones
        best = load_file(str(out / "checkpoints/best.safetensors"))
        assert all(torch.equal(best[k], v) for k, v in state["ema"].items())


def test_early_stopping_with_patience(tmp_path: Path) -> None:
    # a learning rate this small cannot move val accuracy after epoch 1
    summary = train(
        TrainConfig(
            data="digits",
            model="lenet5",
            epochs=10,
            lr=1e-9,
            patience=2,
            train_limit=200,
            out=str(tmp_path / "r"),
            **QUICK,
        )
    )
    assert summary["stopped_early"] and summary["epochs"] == 3 and summary["best_epoch"] == 1


@pytest.mark.slow
def test_transfer_from_fashion_mnist_beats_scratch_on_digits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fashion-MNIST pretraining, then 30 SGD steps on 200 digits: init beats scratch."""
    monkeypatch.setenv("POCKETVISION_HOME", str(tmp_path / "home"))  # the embedding cache
    from pocketvision.data.builtin import find_fashion_mnist

    try:
        find_fashion_mnist(download=False)
    except Exception:
        pytest.skip("Fashion-MNIST not installed (make data)")
    pre = tmp_path / "pre"
    train(
        TrainConfig(
            data="fashion-mnist",
            model="lenet5",
            img_size=32,
            train_limit=6000,
            epochs=3,
            batch_size=64,
            optimizer="adamw",
            augment="light",
            out=str(pre),
            **QUICK,
        )
    )
    budget = {
        "data": "digits",
        "model": "lenet5",
        "train_limit": 200,
        "epochs": 5,
        "batch_size": 32,
        "augment": "none",
        **QUICK,
    }
    scratch = train(TrainConfig(**budget, out=str(tmp_path / "scratch")))  # type: ignore[arg-type]
    tuned = train(TrainConfig(**budget, init=str(pre), out=str(tmp_path / "tuned")))  # type: ignore[arg-type]
    probe_out = tmp_path / "probe"
    probe = train(
        TrainConfig(**budget, init=str(pre), freeze_backbone=True, out=str(probe_out))  # type: ignore[arg-type]
    )
    assert probe["embeddings"]["computed"] > 0  # the probe trained on cached embeddings
    # measured: scratch ~0.11-0.25, fine-tuned ~0.67-0.73, probe ~0.67-0.69 (two seeds)
    assert tuned["test_accuracy"] > scratch["test_accuracy"] + 0.25
    assert probe["test_accuracy"] > scratch["test_accuracy"] + 0.25
    assert tuned["init_skipped"] == ["classifier.bias", "classifier.weight"]  # new head
    # the linear probe changed the head only
    before = load_file(str(pre / "checkpoints/best.safetensors"))
    after = load_file(str(probe_out / "checkpoints/best.safetensors"))
    for name, tensor in after.items():
        assert torch.equal(tensor, before[name]) != name.startswith("classifier."), name


def test_photo_folder_with_bad_files_end_to_end(tmp_path: Path) -> None:
    """A folder of real PNGs (two colours) with broken files: trained, and the bad ones listed."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, channel in (("red", 0), ("blue", 2)):
        folder = tmp_path / "photos" / label
        folder.mkdir(parents=True)
        for i in range(12):
            img = rng.integers(0, 60, (20, 24, 3), dtype=np.uint8)
            img[..., channel] = 200
            Image.fromarray(img).save(folder / f"{i}.png")
    (tmp_path / "photos" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "photos" / "blue" / "empty.jpg").write_bytes(b"")
    out = tmp_path / "run"
    summary = train(
        TrainConfig(
            data=str(tmp_path / "photos"),
            model="lenet5",
            img_size=16,
            epochs=10,
            batch_size=6,
            optimizer="adamw",
            val_fraction=0.25,
            out=str(out),
            **QUICK,
        )
    )
    assert summary["num_bad_files"] == 2 and summary["test_accuracy"] is None
    lines = (out / "bad_files.txt").read_text().splitlines()
    assert sorted(Path(line.split("\t")[0]).name for line in lines) == ["broken.png", "empty.jpg"]
    assert (out / "labels.txt").read_text().split() == ["blue", "red"]
    assert json.loads((out / "preprocessing.json").read_text())["input_size"] == [3, 16, 16]
    assert summary["best_val_accuracy"] == 1.0  # red vs blue is separable at a glance
