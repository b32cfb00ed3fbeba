"""The two oldest learners: a line fit by gradient descent, and Rosenblatt's perceptron."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Log = Callable[[str], None]


def _as_matrix(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


class LinearRegression:
    """y ~ x @ weights + bias, fitted by full-batch gradient descent on the mean squared error.

    Each epoch computes the residuals r = prediction - y and steps against the gradient
    (2/N x^T r, 2/N sum r). :meth:`closed_form` gives the exact least-squares answer to
    compare with: gradient descent should land on it.

    Args:
        lr: learning rate (step size). Too large diverges, too small crawls.

    Attributes:
        weights: (D,) slopes after :meth:`fit`.
        bias: intercept after :meth:`fit`.
        history: mean squared error at the start of each epoch.
    """

    def __init__(self, lr: float = 0.1) -> None:
        self.lr = lr
        self.weights = np.zeros(0)
        self.bias = 0.0
        self.history: list[float] = []

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for (N,) or (N, D) inputs."""
        return _as_matrix(x) @ self.weights + self.bias

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        epochs: int = 500,
        log: Log | None = None,
        every: int = 1,
    ) -> LinearRegression:
        """Gradient descent from zero weights for ``epochs`` full passes over the data.

        Args:
            x: (N,) or (N, D) inputs.
            y: (N,) targets.
            epochs: number of gradient steps.
            log: called with one line per logged epoch (e.g. ``print``).
            every: log every this many epochs (and the last one).
        """
        xm, y = _as_matrix(x), np.asarray(y, dtype=np.float64)
        self.weights, self.bias, self.history = np.zeros(xm.shape[1]), 0.0, []
        for epoch in range(1, epochs + 1):
            residual = xm @ self.weights + self.bias - y
            loss = float(np.mean(residual**2))
            self.history.append(loss)
            self.weights = self.weights - self.lr * 2 * xm.T @ residual / len(y)
            self.bias -= self.lr * 2 * float(residual.mean())
            if log and (epoch % every == 0 or epoch == epochs):
                slopes = ", ".join(f"{w:.4f}" for w in self.weights)
                log(f"epoch {epoch:4d}  mse {loss:.5f}  slope {slopes}  intercept {self.bias:.4f}")
        return self

    @staticmethod
    def closed_form(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        """Exact least squares (the normal equations, solved stably by lstsq): (weights, bias)."""
        xm = _as_matrix(x)
        design = np.hstack([xm, np.ones((len(xm), 1))])
        solution = np.linalg.lstsq(design, np.asarray(y, dtype=np.float64), rcond=None)[0]
        return solution[:-1], float(solution[-1])


class Perceptron:
    """Rosenblatt's perceptron (1958): predict 1 if x @ w + b > 0, fix mistakes one at a time.

    On a mistake the rule adds the input to the weights (for a missed 1) or subtracts it (for
    a false 1). If some line separates the classes this stops after finitely many mistakes
    (Novikoff 1962). If none does, as for XOR, it never stops; with a fixed order of examples
    its weights eventually repeat, and :meth:`fit` stops there and says so.

    Args:
        lr: step size of each correction (1 is Rosenblatt's rule).

    Attributes:
        weights, bias: the separating line after :meth:`fit`.
        mistakes: number of mistakes in each epoch.
        converged: True if an epoch went by without a mistake.
        message: one sentence on the outcome.
    """

    def __init__(self, lr: float = 1.0) -> None:
        self.lr = lr
        self.weights = np.zeros(0)
        self.bias = 0.0
        self.mistakes: list[int] = []
        self.converged = False
        self.message = "not fitted"

    def predict(self, x: np.ndarray) -> np.ndarray:
        """0/1 predictions for (N, D) inputs."""
        return (_as_matrix(x) @ self.weights + self.bias > 0).astype(np.int64)

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        max_epochs: int = 100,
        log: Log | None = None,
        stop_on_cycle: bool = True,
    ) -> Perceptron:
        """Run epochs of the perceptron rule until no mistakes, a repeat, or ``max_epochs``.

        Args:
            x: (N, D) inputs.
            y: (N,) labels, 0 or 1.
            max_epochs: give up after this many passes.
            log: called with one line per epoch.
            stop_on_cycle: stop as soon as the weights at the start of an epoch repeat (which
                proves the rule will cycle forever); False keeps going to ``max_epochs`` so the
                cycle can be watched.
        """
        xm, y = _as_matrix(x), np.asarray(y).astype(np.int64)
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"perceptron labels must be 0 or 1, got {sorted(set(y.tolist()))}")
        self.weights, self.bias, self.mistakes, self.converged = (
            np.zeros(xm.shape[1]),
            0.0,
            [],
            False,
        )
        seen: dict[bytes, int] = {}
        cycle: tuple[int, int] | None = None  # (first epoch, epoch it came back)
        for epoch in range(1, max_epochs + 1):
            state = np.append(self.weights, self.bias).tobytes()
            if cycle is None and state in seen:
                cycle = (seen[state], epoch)
                if stop_on_cycle:
                    break
            seen.setdefault(state, epoch)
            errors = self._epoch(xm, y)
            self.mistakes.append(errors)
            if log:
                w = ", ".join(f"{v:+.2f}" for v in self.weights)
                log(f"epoch {epoch:3d}  mistakes {errors:3d}  weights [{w}]  bias {self.bias:+.2f}")
            if errors == 0:
                self.converged = True
                self.message = f"converged after {epoch} epochs: every point is on the right side"
                return self
        self.message = self._gave_up(len(y), cycle)
        return self

    def _epoch(self, xm: np.ndarray, y: np.ndarray) -> int:
        """One pass of the perceptron rule over every point; the number it got wrong."""
        errors = 0
        for xi, yi in zip(xm, y, strict=True):
            predicted = int(xi @ self.weights + self.bias > 0)
            if predicted != yi:
                self.weights = self.weights + self.lr * (yi - predicted) * xi
                self.bias += self.lr * (yi - predicted)
                errors += 1
        return errors

    def _gave_up(self, n: int, cycle: tuple[int, int] | None) -> str:
        """Why the rule stopped without converging: a proven cycle, or out of epochs."""
        wrong = f"{self.mistakes[-1]} of {n} points still wrong after {len(self.mistakes)} epochs"
        if cycle is not None:
            return (
                f"cannot converge: the weights at the start of epoch {cycle[1]} equal those of "
                f"epoch {cycle[0]}, so the rule cycles forever ({wrong}); no line separates "
                "these classes: they are not linearly separable, like XOR"
            )
        return (
            f"did not converge: {wrong}; the classes may not be linearly separable "
            "(like XOR), or need more epochs"
        )
