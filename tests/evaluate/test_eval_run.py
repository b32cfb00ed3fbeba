"""Evaluating a really trained run: metrics against an independent computation, real PNGs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from eval_support import CLASSES, DigitsRun
from PIL import Image
from sklearn import metrics as skm

from pocketvision.errors import PocketvisionError
from pocketvision.evaluate import evaluate, evaluate_images
from pocketvision.rundir import load_run


def _independent_probs(run: DigitsRun) -> np.ndarray:
    """The trained model on the held-out tensor, normalised by hand, not by pocketvision."""
    model = load_run(run.path).model
    x = (torch.from_numpy(run.images).float() / 255.0 - 0.5) / 0.5
    with torch.no_grad():
        return torch.softmax(model(x).double(), dim=1).numpy()


def _assert_png(path: object, min_side: int = 100) -> None:
    with Image.open(path) as img:  # type: ignore[arg-type]
        img.load()  # fully decodes: a truncated PNG fails here
        assert img.format == "PNG"
        assert min(img.size) >= min_side
        # not a blank canvas: a drawn figure has many distinct colours
        assert len(np.unique(np.asarray(img.convert("L")))) > 10


def test_evaluate_images_matches_independent_computation(digits_run: DigitsRun, tmp_path) -> None:
    run = load_run(digits_run.path)
    result = evaluate_images(
        run, digits_run.images, digits_run.labels, out_dir=tmp_path, device="cpu"
    )
    probs = _independent_probs(digits_run)
    pred = probs.argmax(axis=1)
    y = digits_run.labels
    assert result["num_images"] == len(y) == 360
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    # trained for a few seconds: clearly learned, still makes mistakes to show
    assert 0.8 < result["accuracy"] < 1.0
    assert result["top5_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, probs, k=5))
    assert result["log_loss"] == pytest.approx(skm.log_loss(y, probs), rel=1e-6)
    assert result["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    np.testing.assert_array_equal(result["confusion_matrix"], skm.confusion_matrix(y, pred))

    _assert_png(tmp_path / "confusion_matrix.png")
    _assert_png(tmp_path / "mistakes.png")
    # the tiles are the most confident wrong predictions, most confident first
    wrong = np.flatnonzero(pred != y)
    shown = result["mistakes"]
    assert len(shown) == min(16, len(wrong))
    confidences = [m["confidence"] for m in shown]
    assert confidences == sorted(confidences, reverse=True)
    assert min(confidences) >= np.sort(probs[wrong].max(axis=1))[::-1][len(shown) - 1] - 1e-6
    for m in shown:
        assert m["true"] == CLASSES[y[m["index"]]] != m["predicted"]
        assert m["predicted"] == CLASSES[pred[m["index"]]]


def test_class_names_in_another_order_are_mapped(digits_run: DigitsRun) -> None:
    run = load_run(digits_run.path)
    plain = evaluate_images(run, digits_run.images, digits_run.labels, device="cpu")
    # a dataset that lists the classes backwards: index i means class "9 - i"
    backwards = CLASSES[::-1]
    relabelled = 9 - digits_run.labels
    mapped = evaluate_images(run, digits_run.images, relabelled, classes=backwards, device="cpu")
    assert mapped["accuracy"] == plain["accuracy"]
    assert mapped["confusion_matrix"] == plain["confusion_matrix"]
    with pytest.raises(PocketvisionError, match="not among the 10 labels"):
        evaluate_images(run, digits_run.images, digits_run.labels, classes=[*CLASSES[:9], "x"])


def test_perfect_model_writes_a_no_mistakes_picture(digits_run: DigitsRun, tmp_path) -> None:
    run = load_run(digits_run.path)
    probs = _independent_probs(digits_run)
    right = probs.argmax(axis=1) == digits_run.labels
    result = evaluate_images(
        run, digits_run.images[right], digits_run.labels[right], out_dir=tmp_path, device="cpu"
    )
    assert result["accuracy"] == 1.0 and result["mistakes"] == []
    with Image.open(tmp_path / "mistakes.png") as img:
        img.load()
        assert img.format == "PNG"


def test_evaluate_on_the_runs_own_data(digits_run: DigitsRun) -> None:
    """evaluate() reloads the run's data with load_data and writes the report into the run."""
    from pocketvision.data import load_data

    run = load_run(digits_run.path)
    splits = load_data("digits", run.preprocessing, val_fraction=0.1, seed=0)
    for split_name, split in (("val", splits.val), ("test", splits.test)):
        assert split is not None
        result = evaluate(digits_run.path, split=split_name, device="cpu")
        # independent: the same split straight from load_data, normalised by hand
        x = (split.images.float() / 255.0 - 0.5) / 0.5
        with torch.no_grad():
            pred = run.model(x).argmax(dim=1).numpy()
        assert result["num_images"] == len(split.labels)
        assert result["accuracy"] == pytest.approx(
            skm.accuracy_score(split.labels.numpy(), pred), abs=1e-12
        )
        assert result["split"] == split_name and result["data"] == "digits"
        written = json.loads((digits_run.path / "metrics.json").read_text())
        assert written["split"] == split_name
        assert written["accuracy"] == result["accuracy"]
        assert written["confusion_matrix"] == result["confusion_matrix"]
        _assert_png(digits_run.path / "confusion_matrix.png")
        _assert_png(digits_run.path / "mistakes.png")


def test_evaluate_reproduces_what_training_recorded(tmp_path) -> None:
    """A run from pocketvision.train: evaluate's val and test accuracy are the ones training
    recorded in summary.json, so evaluate reloads the very split the run was selected on."""
    from pocketvision.train import TrainConfig, train

    out = tmp_path / "trained"
    summary = train(
        TrainConfig(
            data="digits", model="lenet5", epochs=2, out=str(out), quiet=True, threads=1, seed=3
        )
    )
    val = evaluate(out, split="val", device="cpu")
    assert val["num_images"] == summary["num_val"]
    assert round(val["accuracy"], 5) == summary["best_val_accuracy"]
    test = evaluate(out, split="test", device="cpu")
    assert test["num_images"] == summary["num_test"]
    assert round(test["accuracy"], 5) == summary["test_accuracy"]
    assert test["log_loss"] == pytest.approx(summary["test_loss"], abs=2e-5)
    assert json.loads((out / "metrics.json").read_text())["split"] == "test"


def test_rgb_run_pictures(tmp_path) -> None:
    """An RGB model (3 classes, so no top-5): colour tiles in mistakes.png."""
    from pocketvision.preprocess import Preprocessing
    from pocketvision.rundir import BEST, ModelSpec, save_weights, write_run_files

    prep = Preprocessing(input_size=(3, 32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    spec = ModelSpec("lenet5", {"num_classes": 3, "in_chans": 3})
    write_run_files(tmp_path, spec, ["red", "green", "blue"], prep)
    model = spec.build()
    with torch.no_grad():  # a model that always answers "red" (softmax of 2, 1, 0)
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([2.0, 1.0, 0.0]))
    save_weights(model, tmp_path / BEST)
    # pure red, green and blue squares
    labels = np.repeat(np.arange(3), 4)
    images = np.zeros((12, 3, 32, 32), np.uint8)
    images[np.arange(12), labels] = 255
    result = evaluate_images(load_run(tmp_path), images, labels, out_dir=tmp_path, device="cpu")
    assert result["top5_accuracy"] is None
    assert result["accuracy"] == pytest.approx(1 / 3)
    assert [r["recall"] for r in result["per_class"]] == [1.0, 0.0, 0.0]
    red = np.exp(2) / (np.exp(2) + np.exp(1) + 1)
    assert result["ece"] == pytest.approx(abs(1 / 3 - red))  # one bin: accuracy 1/3, conf 0.67
    assert len(result["mistakes"]) == 8
    assert {m["predicted"] for m in result["mistakes"]} == {"red"}
    with Image.open(tmp_path / "mistakes.png") as img:
        rgb = np.asarray(img.convert("RGB")).astype(int)
    # saturated colour tiles are in the picture (a grayscale rendering would have none)
    assert ((rgb.max(axis=2) - rgb.min(axis=2)) > 200).sum() > 1000
    _assert_png(tmp_path / "confusion_matrix.png")
