"""`pocketvision lesson` and `pocketvision filter` end to end, and the no-torch promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image

from pocketvision.cli import main
from pocketvision.scratch import SOBEL_Y
from pocketvision.scratch.kernels import EDGE_PERCENTILE
from pocketvision.scratch.lessons import LESSONS, run_lesson


def test_importing_scratch_does_not_load_torch() -> None:
    """The whole NumPy area, CLI wiring included, runs in a process where torch never loads."""
    code = (
        "import sys\n"
        "import pocketvision.scratch, pocketvision.scratch.commands, pocketvision.scratch.lessons\n"
        "from pocketvision.scratch.filter import filter_image\n"
        "import numpy as np\n"
        "filter_image(np.zeros((8, 8), np.uint8), 'sobel-y', stride=2, pool='max2')\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def assert_sensible_png(path: Path) -> None:
    with Image.open(path) as img:
        assert img.format == "PNG"
        img.verify()
    with Image.open(path) as img:
        width, height = img.size
        pixels = np.asarray(img.convert("L"), dtype=np.float64)
    assert 500 <= width <= 3000 and 300 <= height <= 2000, (width, height)
    assert pixels.std() > 10  # something was drawn, not a blank canvas


# Small settings for speed; each lesson's defaults run through the CLI below (lenet's in
# test_scratch_learners.py, where its accuracy is asserted).
FAST = {
    "linear-regression": {"epochs": 20},
    "perceptron": {"max_epochs": 10},
    "mlp": {"epochs": 2, "train_limit": 300},
    "convolution": {"photo": "coffee"},
    "pooling": {"levels": 2},
    "lenet": {"epochs": 1, "train_limit": 200},
}


@pytest.mark.parametrize("name", list(LESSONS))
def test_every_lesson_prints_its_steps_and_writes_a_figure(name, tmp_path) -> None:
    lines: list[str] = []
    result = run_lesson(name, tmp_path / f"{name}.png", log=lines.append, **FAST[name])
    assert result.figure == tmp_path / f"{name}.png"
    assert_sensible_png(result.figure)
    assert lines[0].startswith("Lesson:")
    if name in ("linear-regression", "perceptron", "mlp", "lenet"):
        assert any(line.startswith("epoch") for line in lines)


@pytest.mark.parametrize(
    "name", ["linear-regression", "perceptron", "mlp", "convolution", "pooling"]
)
def test_lesson_cli_runs_the_real_lesson(name, tmp_path, capsys) -> None:
    out = tmp_path / "figure.png"
    assert main(["lesson", name, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"figure written to {out}" in printed
    assert_sensible_png(out)
    expected = {
        "linear-regression": "epoch  100",
        "perceptron": "cannot converge",
        "mlp": "epoch  30",
        "convolution": "Photo: scikit-image's 'camera', 512x512",
        "pooling": "level 4: (64, 64) -> (32, 32)",
    }[name]
    assert expected in printed


def test_lesson_numbers_linear_regression_and_perceptron(tmp_path) -> None:
    quiet = {"log": lambda line: None}
    line = run_lesson("linear-regression", tmp_path / "a.png", **quiet).numbers
    assert abs(line["slope"] - line["closed_form_slope"]) < 1e-3
    assert abs(line["intercept"] - line["closed_form_intercept"]) < 1e-3
    assert abs(line["slope"] - 2.5) < 0.2  # the truth the points were drawn from
    perceptron = run_lesson("perceptron", tmp_path / "b.png", **quiet).numbers
    assert perceptron["separable_converged"] == 1.0 and perceptron["xor_converged"] == 0.0


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A real RGB photo on disk (scikit-image's astronaut, shipped with the package)."""
    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()[::2, ::2]).save(path)  # 256x256 keeps it quick
    return path


def torch_edge_output(
    image: np.ndarray, kernel: np.ndarray, stride: int, pool: int | None
) -> np.ndarray:
    """The filter command's documented output, computed independently with torch."""
    planes = torch.tensor(image, dtype=torch.float64).permute(2, 0, 1)[:, None]
    planes = F.pad(planes, (1, 1, 1, 1), mode="replicate")
    response = F.conv2d(planes, torch.tensor(kernel)[None, None], stride=stride).abs()
    if pool:
        response = F.max_pool2d(response, pool)
    mag = response[:, 0].permute(1, 2, 0).numpy()
    scale = 255.0 / np.percentile(mag, EDGE_PERCENTILE)
    return np.clip(np.rint(mag * scale), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("stride", "pool"), [(1, None), (2, None), (2, 2)])
def test_filter_cli_matches_torch_on_a_real_photo(photo, tmp_path, stride, pool, capsys) -> None:
    out = tmp_path / "out.png"
    argv = ["filter", str(photo), "--kernel", "sobel-y", "--stride", str(stride), "-o", str(out)]
    if pool:
        argv += ["--pool", f"max{pool}"]
    assert main(argv) == 0
    ours = np.asarray(Image.open(out))
    expected = torch_edge_output(np.asarray(Image.open(photo)), SOBEL_Y, stride, pool)
    assert ours.shape == expected.shape == (256 // stride // (pool or 1),) * 2 + (3,)
    assert np.abs(ours.astype(int) - expected).max() <= 1  # rounding at .5 may differ
    assert f"-> {out}" in capsys.readouterr().out


def test_text_kernel_equals_the_named_kernel_it_spells(photo, tmp_path) -> None:
    """'1,0,-1,2,0,-2,1,0,-1' is Sobel x mirrored: as a magnitude it is the same picture."""
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert main(["filter", str(photo), "--kernel", "1,0,-1,2,0,-2,1,0,-1", "-o", str(a)]) == 0
    assert main(["filter", str(photo), "--kernel", "sobel-x", "-o", str(b)]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_sobel_y_lights_up_a_horizontal_edge(tmp_path) -> None:
    image = np.zeros((64, 48), np.uint8)
    image[32:] = 220  # horizontal edge between rows 31 and 32
    src, out = tmp_path / "edge.png", tmp_path / "out.png"
    Image.fromarray(image).save(src)
    assert main(["filter", str(src), "--kernel", "sobel-y", "-o", str(out)]) == 0
    result = np.asarray(Image.open(out))
    assert result.shape == (64, 48)
    assert (result[31] == 255).all() and (result[32] == 255).all()  # the edge is bright
    assert result[:30].max() == 0 and result[34:].max() == 0  # flat regions, borders: dark
    # Sobel x sees no vertical edge at all.
    assert main(["filter", str(src), "--kernel", "sobel-x", "-o", str(out)]) == 0
    assert np.asarray(Image.open(out)).max() == 0


def test_filter_explain_writes_the_figure(photo, tmp_path, capsys) -> None:
    fig = tmp_path / "explain.png"
    argv = [
        "filter",
        str(photo),
        "--kernel",
        "emboss",
        "--stride",
        "2",
        "-o",
        str(tmp_path / "o.png"),
        "--explain",
        str(fig),
    ]
    assert main(argv) == 0
    assert_sensible_png(fig)
    assert f"explanation written to {fig}" in capsys.readouterr().out


def test_filter_blur_keeps_pixel_units(photo, tmp_path) -> None:
    out = tmp_path / "blur.png"
    assert main(["filter", str(photo), "--kernel", "box-blur", "--gray", "-o", str(out)]) == 0
    blurred = np.asarray(Image.open(out))
    gray = np.asarray(Image.open(photo).convert("L"), dtype=np.float64)
    assert blurred.shape == gray.shape
    # Interior pixel = mean of its 3x3 neighbourhood.
    assert abs(int(blurred[100, 100]) - gray[99:102, 99:102].mean()) <= 0.5 + 1e-9


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "no such file"), (b"this is not an image", "not a readable image file")],
)
def test_unreadable_image_is_one_line_naming_the_path(tmp_path, capsys, content, reason) -> None:
    path = tmp_path / "broken.png"
    if content is not None:
        path.write_bytes(content)
    assert main(["filter", str(path), "--kernel", "sobel-y", "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(path) in err and reason in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kernel", "1,2,3,4"], "3x3 = 9 numbers, got 4"),
        (["--kernel", "sobel-q"], "neither a known name"),
        (["--kernel", "sobel-y", "--pool", "median2"], "max or avg followed by a window size"),
        (["--kernel", "sobel-y", "--stride", "0"], "stride must be at least 1"),
    ],
)
def test_bad_filter_arguments_are_one_line_errors(photo, tmp_path, capsys, args, message) -> None:
    assert main(["filter", str(photo), *args, "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
