"""Lessons 4-6: convolution and pooling on a real photo, then LeNet on digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pocketvision.scratch.conv import im2col
from pocketvision.scratch.data import (
    load_digits_split,
    load_photo,
    random_shift,
    upsample_digits,
)
from pocketvision.scratch.kernels import KERNELS, apply_kernel, to_uint8
from pocketvision.scratch.lessons.result import LessonResult, Log
from pocketvision.scratch.networks import LeNet
from pocketvision.scratch.plotting import new_figure, save_figure, show_image, show_kernel
from pocketvision.scratch.pool import avg_pool2d, max_pool2d
from pocketvision.scratch.training import History, train_classifier


def convolution(out: Path, *, photo: str = "camera", log: Log = print) -> LessonResult:
    """Every classic kernel on a real photo, and how im2col makes it one matrix product."""
    image = load_photo(photo, gray=True)
    h, w = image.shape
    log(f"Lesson: convolution. Photo: scikit-image's {photo!r}, {h}x{w} grayscale.")
    log("A 3x3 kernel slides over the image; each output pixel is the dot product of the")
    log("kernel with the 3x3 window under it (padding 1, repeating the border, keeps the size).")
    cols = im2col(image[None, None].astype(np.float32), 3, 1, 1)
    log(f"im2col unrolls every window into a column: a ({cols.shape[0]} x {cols.shape[1]}) matrix;")
    log(f"the whole convolution is one product (1 x 9) . (9 x {cols.shape[1]}).")
    del cols
    outputs = {}
    for step, (name, kernel) in enumerate(KERNELS.items(), 1):
        response = apply_kernel(image, kernel.weights, pad_mode="edge")
        outputs[name] = to_uint8(response, kernel.is_edge)
        rows = " / ".join(" ".join(f"{v:+.3g}" for v in row) for row in kernel.weights)
        log(f"step {step}: {name:13s} [{rows}]  {kernel.meaning}")
        log(
            f"        response range {response.min():+.1f} .. {response.max():+.1f}"
            + ("  -> shown as |response|, so every edge is bright" if kernel.is_edge else "")
        )
    strided = apply_kernel(image, KERNELS["sobel-y"].weights, stride=2)
    log(f"stride 2 visits every other window: {image.shape} -> {strided.shape}")

    fig = new_figure(16, 8.5)
    axes = fig.subplots(2, 4)
    show_image(axes[0, 0], image, f"{photo} (input)")
    for ax, (name, result) in zip(axes.ravel()[1:], outputs.items(), strict=True):
        show_image(ax, result, name + (" |response|" if KERNELS[name].is_edge else ""))
        inset = ax.inset_axes((0.0, 0.0, 0.28, 0.28))
        show_kernel(inset, KERNELS[name].weights, "")
        for text in inset.texts:
            text.set_fontsize(5)
    save_figure(fig, out)
    return LessonResult(
        out, {"height": float(h), "width": float(w), "kernels": float(len(KERNELS))}
    )


def pooling(out: Path, *, photo: str = "camera", levels: int = 4, log: Log = print) -> LessonResult:
    """Max and average pooling on a toy grid and, level by level, on a real photo."""
    toy = np.array([[1, 3, 2, 0], [5, 6, 1, 2], [0, 2, 9, 4], [1, 1, 3, 8]], dtype=np.float64)
    log("Lesson: pooling. A 2x2 window with stride 2 keeps one number per window.")
    log("toy input:\n" + "\n".join("  " + " ".join(f"{v:2.0f}" for v in r) for r in toy))
    log("max pool 2x2:  " + str(max_pool2d(toy[None, None], 2)[0, 0].tolist()))
    log("avg pool 2x2:  " + str(avg_pool2d(toy[None, None], 2)[0, 0].tolist()))
    image = load_photo(photo, gray=True).astype(np.float64)
    edges = np.abs(apply_kernel(image, KERNELS["sobel-y"].weights, pad_mode="edge"))
    maxed, averaged, edge_max = [image], [image], [edges]
    for level in range(1, levels + 1):
        maxed.append(max_pool2d(maxed[-1][None, None], 2)[0, 0])
        averaged.append(avg_pool2d(averaged[-1][None, None], 2)[0, 0])
        edge_max.append(max_pool2d(edge_max[-1][None, None], 2)[0, 0])
        log(
            f"level {level}: {maxed[-2].shape} -> {maxed[-1].shape}  "
            f"({4**level}x fewer pixels); strongest Sobel-y edge after max pool "
            f"{edge_max[-1].max():.0f}, after avg pool {avg_pool2d(edges[None, None], 2**level)[0, 0].max():.0f}"
        )
    log("Max pooling keeps the strongest response in each window (an edge survives);")
    log("average pooling blurs it away. Both shrink the work of every later layer 4x per level.")

    fig = new_figure(3.2 * (levels + 1), 10)
    rows = fig.subplots(3, levels + 1)
    for col in range(levels + 1):
        size = f"{maxed[col].shape[0]}x{maxed[col].shape[1]}"
        show_image(rows[0, col], maxed[col], f"max pool x{col} ({size})", vmin=0, vmax=255)
        show_image(rows[1, col], averaged[col], f"avg pool x{col} ({size})", vmin=0, vmax=255)
        show_image(rows[2, col], edge_max[col], f"|Sobel y|, max pool x{col}")
    save_figure(fig, out)
    return LessonResult(out, {"levels": float(levels), "final_size": float(maxed[-1].shape[0])})


def lenet(
    out: Path,
    *,
    epochs: int = 30,
    lr: float = 0.05,
    weight_decay: float = 5e-4,
    seed: int = 0,
    train_limit: int | None = None,
    log: Log = print,
) -> LessonResult:
    """LeNet in NumPy: conv-pool-conv-pool-fc on digits, trained by hand-written backprop."""
    data = load_digits_split()
    x_train = upsample_digits(data.x_train[:train_limit])
    y_train = data.y_train[:train_limit]
    x_test = upsample_digits(data.x_test)
    log("Lesson: LeNet (LeCun et al. 1998) in NumPy on scikit-learn's digits, upsampled to 16x16")
    log("conv 5x5 (6) -> ReLU -> max pool -> conv 5x5 (16) -> ReLU -> max pool -> fc 84 -> fc 10")
    log(
        f"{len(x_train)} training images (each batch shifted by up to 2 pixels), {len(x_test)} test"
    )
    model = LeNet(seed=seed)
    history = train_classifier(
        model,
        x_train,
        y_train,
        x_test,
        data.y_test,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        augment=random_shift_2,
        log=log,
    )
    log(
        f"test accuracy {history.test_accuracy[-1]:.2%} after {epochs} epochs "
        f"({history.seconds:.1f} s wall, {history.cpu_seconds:.1f} s CPU)"
    )

    _plot_lenet(model, history, x_test[:1], int(data.y_test[0]), out)
    return LessonResult(
        out,
        {
            "test_accuracy": history.test_accuracy[-1],
            "seconds": history.seconds,
            "cpu_seconds": history.cpu_seconds,
        },
    )


def _plot_lenet(model: LeNet, history: History, digit: np.ndarray, label: int, out: Path) -> None:
    """Learning curves, the learned conv1 kernels and both layers' maps of one test digit."""
    acts = model.features(digit)
    fig = new_figure(14, 8)
    top, bottom = np.asarray(fig.subfigures(2, 1, height_ratios=[1, 1.3])).ravel()
    ax_loss, ax_acc, ax_in = top.subplots(1, 3, width_ratios=[1, 1, 0.6])
    ep = np.arange(1, len(history.train_loss) + 1)
    ax_loss.plot(ep, history.train_loss)
    ax_loss.set(title="learning curve", xlabel="epoch", ylabel="cross-entropy", yscale="log")
    ax_acc.plot(ep, history.train_accuracy, label="train")
    ax_acc.plot(ep, history.test_accuracy, label="test")
    ax_acc.set(title="accuracy", xlabel="epoch", ylim=(0, 1.01))
    ax_acc.legend(fontsize=8)
    show_image(ax_in, digit[0, 0], f"test digit {label}", cmap="gray_r")
    grid = bottom.subplots(3, 16)
    for ax in grid.ravel():
        ax.set_axis_off()
    for i in range(6):
        show_image(grid[0, i], model.params["conv1_w"][i, 0], f"kernel {i}", cmap="RdBu_r")
        show_image(grid[1, i], acts["relu1"][0, i], f"conv1 map {i}")
    for i in range(16):
        show_image(grid[2, i], acts["relu2"][0, i], f"conv2 {i}")
    bottom.suptitle("learned conv1 kernels, and the feature maps of the digit above", fontsize=9)
    save_figure(fig, out)


def random_shift_2(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The LeNet lesson's augmentation: shifts of up to 2 pixels (1 pixel of the 8x8 digit)."""
    return random_shift(batch, rng, max_shift=2)
