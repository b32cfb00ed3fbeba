"""Lessons 1-3: a line, a perceptron, a multilayer perceptron."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pocketvision.scratch.data import load_digits_split
from pocketvision.scratch.learners import LinearRegression, Perceptron
from pocketvision.scratch.lessons.result import LessonResult, Log
from pocketvision.scratch.networks import MLP
from pocketvision.scratch.plotting import new_figure, save_figure, show_image
from pocketvision.scratch.training import train_classifier

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def linear_regression(
    out: Path, *, epochs: int = 100, lr: float = 0.1, seed: int = 0, log: Log = print
) -> LessonResult:
    """Fit y = slope * x + intercept to noisy points by gradient descent, then check the math."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, 60)
    y = 2.5 * x - 1.0 + rng.normal(0, 0.8, x.size)  # the truth the data was drawn from
    log("Lesson: linear regression by gradient descent")
    log(f"60 points around y = 2.5 x - 1.0 (noise 0.8). Start from slope 0, intercept 0, lr {lr}.")
    log("Each epoch: predict, measure the mean squared error, step against its gradient.")
    model = LinearRegression(lr=lr).fit(x, y, epochs=epochs, log=log, every=max(1, epochs // 20))
    exact_w, exact_b = LinearRegression.closed_form(x, y)
    slope_gap = abs(float(model.weights[0] - exact_w[0]))
    log(f"closed form (least squares): slope {exact_w[0]:.4f}  intercept {exact_b:.4f}")
    log(f"gradient descent is within {max(slope_gap, abs(model.bias - exact_b)):.2e} of it")

    fig = new_figure(10, 4)
    ax_fit, ax_loss = fig.subplots(1, 2)
    grid = np.linspace(-3, 3, 2)
    ax_fit.scatter(x, y, s=12, color="0.4", label="data")
    ax_fit.plot(
        grid, model.predict(grid), color="C0", lw=2, label=f"gradient descent ({epochs} epochs)"
    )
    ax_fit.plot(grid, exact_w[0] * grid + exact_b, "C1--", lw=2, label="closed form")
    ax_fit.set(title="the fitted line", xlabel="x", ylabel="y")
    ax_fit.legend(fontsize=8)
    ax_loss.plot(np.arange(1, epochs + 1), model.history, color="C0")
    ax_loss.set(title="learning curve", xlabel="epoch", ylabel="mean squared error", yscale="log")
    save_figure(fig, out)
    return LessonResult(
        out,
        {
            "slope": float(model.weights[0]),
            "intercept": model.bias,
            "closed_form_slope": float(exact_w[0]),
            "closed_form_intercept": exact_b,
            "final_mse": model.history[-1],
        },
    )


def _boundary(ax: Axes, model: Perceptron, x: np.ndarray, y: np.ndarray, title: str) -> None:
    """Points coloured by class and the perceptron's line w . x + b = 0 with its positive side."""
    lo, hi = x.min(axis=0) - 0.5, x.max(axis=0) + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    zone = model.predict(np.column_stack([gx.ravel(), gy.ravel()])).reshape(gx.shape)
    ax.contourf(gx, gy, zone, levels=[-0.5, 0.5, 1.5], colors=["#f3c9c9", "#c9d9f3"])
    ax.scatter(x[:, 0], x[:, 1], c=np.where(y == 1, "C0", "C3"), edgecolors="k", s=30)
    ax.set_title(title, fontsize=9)


def perceptron(out: Path, *, max_epochs: int = 50, seed: int = 0, log: Log = print) -> LessonResult:
    """Rosenblatt's rule on two separable clouds (it converges) and on XOR (it cannot)."""
    rng = np.random.default_rng(seed)
    x_sep = np.vstack([rng.normal((-1.5, -1), 0.6, (20, 2)), rng.normal((1.5, 1), 0.6, (20, 2))])
    y_sep = np.repeat([0, 1], 20)
    x_xor = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y_xor = np.array([0, 1, 1, 0])
    log("Lesson: the perceptron (Rosenblatt 1958)")
    log("Predict 1 when w . x + b > 0. On a mistake add the input to w (missed 1) or subtract it.")
    log("Part 1: two clouds that a straight line can separate.")
    sep = Perceptron().fit(x_sep, y_sep, max_epochs=max_epochs, log=log)
    log(sep.message)
    log("Part 2: XOR, where (0,1) and (1,0) are 1 but (0,0) and (1,1) are 0.")
    xor = Perceptron().fit(
        x_xor, y_xor, max_epochs=min(max_epochs, 12), log=log, stop_on_cycle=False
    )
    log(xor.message)
    log("A hidden layer fixes this: see `pocketvision lesson mlp`.")

    fig = new_figure(12, 4)
    ax_sep, ax_xor, ax_err = fig.subplots(1, 3)
    _boundary(
        ax_sep, sep, x_sep, y_sep, f"separable: {'converged' if sep.converged else 'not converged'}"
    )
    _boundary(ax_xor, xor, x_xor, y_xor, "XOR: no line separates the classes")
    ax_err.plot(np.arange(1, len(sep.mistakes) + 1), sep.mistakes, "o-", label="separable clouds")
    ax_err.plot(np.arange(1, len(xor.mistakes) + 1), xor.mistakes, "s-", label="XOR")
    ax_err.set(title="mistakes per epoch", xlabel="epoch", ylabel="mistakes")
    ax_err.legend(fontsize=8)
    save_figure(fig, out)
    return LessonResult(
        out,
        {
            "separable_converged": float(sep.converged),
            "separable_epochs": float(len(sep.mistakes)),
            "xor_converged": float(xor.converged),
        },
    )


def mlp(
    out: Path,
    *,
    epochs: int = 30,
    hidden: int = 64,
    lr: float = 0.05,
    seed: int = 0,
    train_limit: int | None = None,
    log: Log = print,
) -> LessonResult:
    """A two-layer network learns scikit-learn's 8x8 digits by backpropagation."""
    data = load_digits_split()
    x_train, y_train = data.x_train[:train_limit], data.y_train[:train_limit]
    flat = x_train.reshape(len(x_train), -1)
    flat_test = data.x_test.reshape(len(data.x_test), -1)
    log("Lesson: a multilayer perceptron on handwritten digits (scikit-learn's 8x8 digits)")
    log(f"{len(flat)} training and {len(flat_test)} test images; 64 pixels -> {hidden} ReLU -> 10")
    log("Each step: forward, cross-entropy loss, backpropagate layer by layer, SGD with momentum.")
    model = MLP(64, hidden, 10, seed=seed)
    history = train_classifier(
        model, flat, y_train, flat_test, data.y_test, epochs=epochs, lr=lr, seed=seed, log=log
    )
    log(
        f"test accuracy {history.test_accuracy[-1]:.2%} after {epochs} epochs "
        f"({history.seconds:.1f} s wall, {history.cpu_seconds:.1f} s CPU)"
    )

    fig = new_figure(12, 6)
    top, bottom = np.asarray(fig.subfigures(2, 1, height_ratios=[1.2, 1])).ravel()
    ax_loss, ax_acc = top.subplots(1, 2)
    ep = np.arange(1, epochs + 1)
    ax_loss.plot(ep, history.train_loss)
    ax_loss.set(title="learning curve", xlabel="epoch", ylabel="cross-entropy", yscale="log")
    ax_acc.plot(ep, history.train_accuracy, label="train")
    ax_acc.plot(ep, history.test_accuracy, label="test")
    ax_acc.set(title="accuracy", xlabel="epoch", ylim=(0, 1.01))
    ax_acc.legend(fontsize=8)
    predicted = model.predict(flat_test)
    wrong = np.flatnonzero(predicted != data.y_test)[:4]  # show the mistakes too
    shown = np.concatenate([wrong, np.flatnonzero(predicted == data.y_test)[: 12 - len(wrong)]])
    for ax, i in zip(bottom.subplots(1, 12), shown, strict=True):
        ok = predicted[i] == data.y_test[i]
        title = f"{predicted[i]}" + ("" if ok else f" (is {data.y_test[i]})")
        show_image(ax, data.x_test[i], title, cmap="gray_r")
        ax.title.set_color("k" if ok else "C3")
    bottom.suptitle("test digits with the network's answer (red: wrong)", fontsize=9)
    save_figure(fig, out)
    return LessonResult(
        out,
        {
            "test_accuracy": history.test_accuracy[-1],
            "seconds": history.seconds,
            "cpu_seconds": history.cpu_seconds,
        },
    )
