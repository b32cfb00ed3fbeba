"""Minibatch SGD with momentum, and the epoch loop shared by the MLP and LeNet."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

Params = dict[str, np.ndarray]


class Classifier(Protocol):
    """What :func:`train_classifier` needs from a network."""

    params: Params

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
        """Mean cross-entropy on a batch and its gradient for every parameter."""
        ...

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted classes."""
        ...


@dataclass
class History:
    """What happened in each epoch of training."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the whole loop
    cpu_seconds: float = 0.0  # CPU time of this process in the loop (immune to busy neighbours)


def accuracy(model: Classifier, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    """Fraction of ``x`` classified as ``y``, predicted in batches to bound memory."""
    predictions = np.concatenate(
        [model.predict(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    )
    return float((predictions == y).mean())


def train_classifier(
    model: Classifier,
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 32,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    seed: int = 0,
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    log: Callable[[str], None] | None = None,
    blas_threads: int | None = 1,
) -> History:
    """Minibatch SGD with momentum; the learning rate follows a cosine from ``lr`` to 0.

    v <- momentum * v + grad + weight_decay * param;  param <- param - lr_t * v.

    Args:
        model: a network with ``params``, ``loss_and_grads`` and ``predict``.
        x, y: training inputs and integer labels.
        x_test, y_test: held-out data, measured after every epoch (never trained on).
        epochs: passes over the training data.
        lr: peak learning rate.
        batch_size: examples per step.
        momentum: fraction of the previous step kept.
        weight_decay: L2 penalty on every parameter.
        seed: order of the examples in each epoch (and the augmentation's randomness).
        augment: optional ``(batch, rng) -> batch`` applied to each training batch.
        log: called with one line per epoch.
        blas_threads: BLAS threads during training (None leaves the library's default).
    """
    # The matrices here are small (at most 150 x 8192 for LeNet): extra BLAS threads cost more
    # in synchronisation than they save, and on a busy machine their spin-waiting made LeNet
    # 10x slower (measured: 14 s vs 1.1 s CPU for 10 epochs). threadpoolctl ships with
    # scikit-learn.
    recipe = _Recipe(epochs, lr, batch_size, momentum, weight_decay, seed, augment, log)
    with _blas_threads(blas_threads):
        return _train(model, (x, y), (x_test, y_test), recipe)


@dataclass(frozen=True)
class _Recipe:
    """The keywords of :func:`train_classifier`, for the loop."""

    epochs: int
    lr: float
    batch_size: int
    momentum: float
    weight_decay: float
    seed: int
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None
    log: Callable[[str], None] | None


def _blas_threads(limit: int | None) -> AbstractContextManager[object]:
    if limit is None:
        return nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # only an optimisation
        return nullcontext()
    return threadpool_limits(limits=limit, user_api="blas")


def _train(
    model: Classifier,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    r: _Recipe,
) -> History:
    (x, y), (x_test, y_test) = train, test
    rng = np.random.default_rng(r.seed)
    velocity = {k: np.zeros_like(v) for k, v in model.params.items()}
    total_steps, step = r.epochs * -(-len(x) // r.batch_size), 0
    history = History()
    start, cpu_start = time.perf_counter(), time.process_time()
    for epoch in range(1, r.epochs + 1):
        order = rng.permutation(len(x))
        losses = []
        for i in range(0, len(x), r.batch_size):
            batch = order[i : i + r.batch_size]
            xb = x[batch] if r.augment is None else r.augment(x[batch], rng)
            loss, grads = model.loss_and_grads(xb, y[batch])
            losses.append(loss)
            lr_t = r.lr * 0.5 * (1 + np.cos(np.pi * step / total_steps))
            _sgd_step(model.params, grads, velocity, lr_t, r)
            step += 1
        history.train_loss.append(float(np.mean(losses)))
        history.train_accuracy.append(accuracy(model, x, y))
        history.test_accuracy.append(accuracy(model, x_test, y_test))
        if r.log:
            r.log(
                f"epoch {epoch:3d}  loss {history.train_loss[-1]:.4f}  "
                f"train acc {history.train_accuracy[-1]:.2%}  "
                f"test acc {history.test_accuracy[-1]:.2%}  "
                f"({time.perf_counter() - start:.1f} s)"
            )
    history.seconds = time.perf_counter() - start
    history.cpu_seconds = time.process_time() - cpu_start
    return history


def _sgd_step(params: Params, grads: Params, velocity: Params, lr: float, r: _Recipe) -> None:
    """v <- momentum * v + grad + weight_decay * param;  param <- param - lr * v (in place)."""
    for name, param in params.items():
        v = velocity[name]
        v *= r.momentum
        v += grads[name] + r.weight_decay * param
        param -= (lr * v).astype(param.dtype)
