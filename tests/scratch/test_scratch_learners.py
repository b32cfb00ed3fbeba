"""LinearRegression, Perceptron, MLP and LeNet: the numbers issue 3 sets, and gradients vs torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pocketvision.scratch import MLP, LeNet, LinearRegression, Perceptron
from pocketvision.scratch.data import load_digits_split, random_shift, upsample_digits
from pocketvision.scratch.lessons import run_lesson


def test_gradient_descent_recovers_the_closed_form_line() -> None:
    rng = np.random.default_rng(42)
    x = rng.uniform(-2, 2, 200)
    y = 1.7 * x + 0.4 + rng.normal(0, 0.5, x.size)
    model = LinearRegression(lr=0.1).fit(x, y, epochs=300)
    slope, intercept = LinearRegression.closed_form(x, y)
    assert abs(model.weights[0] - slope[0]) < 1e-3
    assert abs(model.bias - intercept) < 1e-3
    # The closed form is least squares: the same line numpy's polyfit finds.
    np.testing.assert_allclose((slope[0], intercept), np.polyfit(x, y, 1), rtol=1e-9)
    assert len(model.history) == 300
    assert model.history[-1] < model.history[0] / 5
    assert all(b <= a + 1e-12 for a, b in zip(model.history, model.history[1:], strict=False))


def test_gradient_descent_with_several_inputs() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = x @ np.array([0.5, -2.0, 1.0]) + 3.0 + rng.normal(0, 0.1, 300)
    model = LinearRegression(lr=0.1).fit(x, y, epochs=400)
    weights, bias = LinearRegression.closed_form(x, y)
    np.testing.assert_allclose(model.weights, weights, atol=1e-3)
    assert abs(model.bias - bias) < 1e-3


def test_perceptron_converges_on_separable_data() -> None:
    rng = np.random.default_rng(1)
    x = np.vstack([rng.normal((-2, 0), 0.5, (30, 2)), rng.normal((2, 1), 0.5, (30, 2))])
    y = np.repeat([0, 1], 30)
    model = Perceptron().fit(x, y, max_epochs=100)
    assert model.converged
    assert model.mistakes[-1] == 0
    np.testing.assert_array_equal(model.predict(x), y)
    assert model.message.startswith("converged")


@pytest.mark.parametrize("stop_on_cycle", [True, False])
def test_perceptron_reports_that_it_cannot_learn_xor(stop_on_cycle) -> None:
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([0, 1, 1, 0])
    model = Perceptron().fit(x, y, max_epochs=50, stop_on_cycle=stop_on_cycle)
    assert not model.converged
    assert (model.predict(x) != y).any()
    assert "cannot converge" in model.message and "not linearly separable" in model.message
    assert min(model.mistakes) > 0
    if stop_on_cycle:
        assert len(model.mistakes) < 10  # the repeat is found long before the limit
    else:
        assert len(model.mistakes) == 50  # kept going, never a clean epoch
    assert "weights at the start of epoch" in model.message  # the cycle was detected either way


def test_perceptron_rejects_labels_other_than_0_and_1() -> None:
    with pytest.raises(ValueError, match=r"0 or 1, got \[-1, 1\]"):
        Perceptron().fit(np.zeros((2, 2)), np.array([-1, 1]))


def test_mlp_gradients_match_torch_autograd() -> None:
    model = MLP(64, 16, 10, seed=3, dtype=np.float64)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (8, 64)), rng.integers(0, 10, 8)
    loss, grads = model.loss_and_grads(x, y)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    logits = F.linear(F.relu(F.linear(torch.tensor(x), t["w1"], t["b1"])), t["w2"], t["b2"])
    ref = F.cross_entropy(logits, torch.tensor(y))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-10)
    for name, param in t.items():
        np.testing.assert_allclose(grads[name], param.grad.numpy(), rtol=1e-5, atol=1e-12)


def test_lenet_gradients_match_torch_autograd() -> None:
    """Every hand-written backward step of LeNet, end to end, against autograd."""
    model = LeNet(seed=1, dtype=np.float64)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (4, 1, 16, 16)), rng.integers(0, 10, 4)
    loss, grads = model.loss_and_grads(x, y)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    h = F.max_pool2d(F.relu(F.conv2d(torch.tensor(x), t["conv1_w"], t["conv1_b"], padding=2)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, t["conv2_w"], t["conv2_b"])), 2).flatten(1)
    logits = F.linear(F.relu(F.linear(h, t["fc1_w"], t["fc1_b"])), t["fc2_w"], t["fc2_b"])
    ref = F.cross_entropy(logits, torch.tensor(y))
    ref.backward()
    np.testing.assert_allclose(model.forward(x), logits.detach().numpy(), rtol=1e-5, atol=1e-12)
    assert loss == pytest.approx(ref.item(), rel=1e-10)
    for name, param in t.items():
        np.testing.assert_allclose(
            grads[name], param.grad.numpy(), rtol=1e-5, atol=1e-12, err_msg=name
        )


def test_digits_split_and_augmentation() -> None:
    data = load_digits_split()
    assert (len(data.x_train), len(data.x_test)) == (1347, 450)
    assert data.x_train.dtype == np.float32 and data.x_train.min() >= 0 and data.x_train.max() <= 1
    big = upsample_digits(data.x_test[:3])
    assert big.shape == (3, 1, 16, 16)
    np.testing.assert_array_equal(big[:, 0, ::2, ::2], data.x_test[:3])
    shifted = random_shift(big, np.random.default_rng(0), max_shift=2)
    assert shifted.shape == big.shape
    # Every image moved as a whole: each is its original rolled by one offset.
    for orig, moved in zip(big[:, 0], shifted[:, 0], strict=True):
        padded = np.pad(orig, 2)
        assert any(
            np.array_equal(moved, padded[dy : dy + 16, dx : dx + 16])
            for dy in range(5)
            for dx in range(5)
        )


def test_mlp_lesson_reaches_95_percent_on_digits(tmp_path) -> None:
    """Issue 3: a two-layer MLP by backprop in NumPy, >= 95% on the digits test split."""
    result = run_lesson("mlp", tmp_path / "mlp.png", log=lambda line: None)
    assert result.numbers["test_accuracy"] >= 0.95
    assert result.figure.stat().st_size > 10_000


def test_lenet_lesson_reaches_97_percent_on_digits_in_under_2_minutes(tmp_path) -> None:
    """Issue 3: NumPy LeNet >= 97% digits test accuracy, trained in < 2 minutes (seed 0).

    This runs the real lesson with its defaults (30 epochs) on one thread (conftest). The
    time is the training loop's; CPU time is asserted too because wall time on a shared
    machine depends on the neighbours (one thread's CPU time is its wall time when alone).
    """
    lines: list[str] = []
    result = run_lesson("lenet", tmp_path / "lenet.png", log=lines.append)
    assert result.numbers["test_accuracy"] >= 0.97
    assert result.numbers["cpu_seconds"] < 120
    assert result.numbers["seconds"] < 120
    assert sum(line.startswith("epoch") for line in lines) == 30
    assert result.figure.stat().st_size > 10_000
