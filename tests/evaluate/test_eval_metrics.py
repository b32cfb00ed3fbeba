"""The NumPy metrics against scikit-learn (the oracle) and a hand-computed calibration case."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from pocketvision.evaluate.metrics import (
    accuracy,
    calibration_bins,
    classification_metrics,
    confusion_matrix,
    expected_calibration_error,
    log_loss,
    precision_recall_f1,
    top_k_accuracy,
)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _random_case(seed: int, k: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities that are informative but imperfect (about 60% right)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) * 1.5
    logits[np.arange(n), y] += 1.5
    return y, _softmax(logits)


CASES = [(seed, k) for seed in range(3) for k in (2, 3, 5, 10)]


def _edge_cases() -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """(name, y_true, y_pred, K) that stress the 0/0 rules."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 4, 50)
    never_predicted = np.where(y == 3, 0, y)  # class 3 is never predicted
    absent = rng.integers(0, 3, 50)  # class 3 is never the truth, but sometimes predicted
    absent_pred = np.where(rng.random(50) < 0.2, 3, absent)
    return [
        ("class never predicted", y, never_predicted, 4),
        ("class absent from truth", absent, absent_pred, 4),
        ("absent and never predicted", absent, absent, 4),
        ("all wrong", y, (y + 1) % 4, 4),
        ("perfect", y, y, 4),
        ("one sample", np.array([2]), np.array([1]), 4),
    ]


@pytest.mark.parametrize(("seed", "k"), CASES)
def test_confusion_accuracy_prf_match_sklearn_on_random(seed: int, k: int) -> None:
    y, p = _random_case(seed, k)
    pred = p.argmax(axis=1)
    labels = list(range(k))
    cm = confusion_matrix(y, pred, k)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y, pred, labels=labels))
    assert accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred), abs=1e-15)
    precision, recall, f1, support = precision_recall_f1(cm)
    sk = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    for ours, theirs in zip((precision, recall, f1, support), sk, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("name", "y", "pred", "k"), _edge_cases(), ids=lambda v: str(v)[:30])
def test_prf_and_macro_match_sklearn_on_edge_cases(
    name: str, y: np.ndarray, pred: np.ndarray, k: int
) -> None:
    labels = list(range(k))
    cm = confusion_matrix(y, pred, k)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y, pred, labels=labels))
    precision, recall, f1, support = precision_recall_f1(cm)
    sk = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    for ours, theirs in zip((precision, recall, f1, support), sk, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12, err_msg=name)
    macro = skm.precision_recall_fscore_support(
        y, pred, labels=labels, average="macro", zero_division=0
    )
    assert precision.mean() == pytest.approx(macro[0], abs=1e-12)
    assert recall.mean() == pytest.approx(macro[1], abs=1e-12)
    assert f1.mean() == pytest.approx(macro[2], abs=1e-12)


@pytest.mark.parametrize(("seed", "k"), [c for c in CASES if c[1] >= 3])
def test_top_k_matches_sklearn(seed: int, k: int) -> None:
    y, p = _random_case(seed, k)
    for top in range(1, k):  # k = K is trivially 1.0 (sklearn warns)
        expected = skm.top_k_accuracy_score(y, p, k=top, labels=list(range(k)))
        assert top_k_accuracy(y, p, top) == pytest.approx(expected, abs=1e-15)


def test_top1_equals_argmax_accuracy_even_with_ties() -> None:
    # equal scores everywhere: argmax picks class 0, and so must top-1
    y = np.array([0, 1, 2, 0])
    p = np.full((4, 3), 1 / 3)
    assert top_k_accuracy(y, p, 1) == accuracy(y, p.argmax(axis=1)) == 0.5
    assert top_k_accuracy(y, p, 2) == 0.75  # classes 0 and 1 make the cut, 2 does not


@pytest.mark.parametrize(("seed", "k"), CASES)
def test_log_loss_matches_sklearn(seed: int, k: int) -> None:
    y, p = _random_case(seed, k)
    assert log_loss(y, p) == pytest.approx(skm.log_loss(y, p, labels=list(range(k))), rel=1e-12)


def test_log_loss_of_zero_probability_is_clipped_like_sklearn() -> None:
    y = np.array([0, 1, 2])
    p = np.array([[0.0, 1.0, 0.0], [0.2, 0.8, 0.0], [0.1, 0.1, 0.8]])
    ours = log_loss(y, p)
    assert np.isfinite(ours) and ours > 10  # -log(eps) / 3 ~ 12
    assert ours == pytest.approx(skm.log_loss(y, p, labels=[0, 1, 2]), rel=1e-12)


def test_ece_hand_computed() -> None:
    # 15 bins of width 1/15. Confidences .9, .9 (bin 13: one right, one wrong), .5 (bin 7,
    # right), .42 (bin 6, wrong):
    #   2/4 * |0.5 - 0.9| + 1/4 * |1 - 0.5| + 1/4 * |0 - 0.42| = 0.2 + 0.125 + 0.105 = 0.43
    y = np.array([0, 1, 1, 2])
    p = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.2, 0.5, 0.3], [0.42, 0.33, 0.25]])
    assert expected_calibration_error(y, p) == pytest.approx(0.43, abs=1e-12)
    bins = calibration_bins(y, p)
    assert [b["count"] for b in bins] == [0] * 6 + [1, 1] + [0] * 5 + [2, 0]
    assert bins[13]["accuracy"] == 0.5 and bins[13]["confidence"] == pytest.approx(0.9)
    # with 2 bins, (0, .5] holds .5 and .42 (one right): |0.5 - 0.46| / 2 + |0.5 - 0.9| / 2
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.02 + 0.2, abs=1e-12)


def test_ece_zero_when_confidence_matches_accuracy() -> None:
    y = np.array([0, 1])
    sure = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(y, sure) == 0.0
    # confidence 0.75 and 3 of 4 right: perfectly calibrated
    y4 = np.array([0, 0, 0, 1])
    p4 = np.tile([0.75, 0.25], (4, 1))
    assert expected_calibration_error(y4, p4) == pytest.approx(0.0, abs=1e-15)


def test_classification_metrics_report() -> None:
    y, p = _random_case(0, 10)
    classes = [f"c{i}" for i in range(10)]
    report = classification_metrics(y, p, classes)
    pred = p.argmax(axis=1)
    assert report["num_images"] == 300
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert report["top5_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y, p, k=5))
    assert report["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert report["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert [r["label"] for r in report["per_class"]] == classes
    assert sum(r["support"] for r in report["per_class"]) == 300
    assert np.asarray(report["confusion_matrix"]).sum() == 300
    assert sum(b["count"] for b in report["calibration"]) == 300
    # fewer than 5 classes: no top-5
    y3, p3 = _random_case(1, 3)
    assert classification_metrics(y3, p3, ["a", "b", "c"])["top5_accuracy"] is None


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError, match="out of range"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="probabilities must be"):
        log_loss([0, 1], np.ones((3, 2)) / 2)
    with pytest.raises(ValueError, match="k must be"):
        top_k_accuracy([0, 1], np.ones((2, 2)) / 2, 3)
