"""Classic kernels: their exact values, and apply_kernel against torch on gray and RGB images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pocketvision.scratch import (
    BOX_BLUR_3,
    EMBOSS,
    GAUSSIAN_BLUR_3,
    KERNELS,
    LAPLACIAN,
    SHARPEN,
    SOBEL_X,
    SOBEL_Y,
    apply_kernel,
)
from pocketvision.scratch.kernels import parse_kernel, to_uint8


def test_classic_kernels_have_their_textbook_values() -> None:
    np.testing.assert_array_equal(SOBEL_Y, [[-1, -2, -1], [0, 0, 0], [1, 2, 1]])  # the true Sobel
    np.testing.assert_array_equal(SOBEL_X, SOBEL_Y.T)
    np.testing.assert_array_equal(GAUSSIAN_BLUR_3, np.outer([1, 2, 1], [1, 2, 1]) / 16)
    assert (GAUSSIAN_BLUR_3[1, 1], GAUSSIAN_BLUR_3[0, 1], GAUSSIAN_BLUR_3[0, 0]) == (
        1 / 4,
        1 / 8,
        1 / 16,
    )
    np.testing.assert_allclose(BOX_BLUR_3, 1 / 9)
    np.testing.assert_array_equal(LAPLACIAN, [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    np.testing.assert_array_equal(SHARPEN, np.eye(3)[1][:, None] * np.eye(3)[1] - LAPLACIAN)
    np.testing.assert_array_equal(EMBOSS, [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    for name, kernel in KERNELS.items():
        # Edge kernels sum to 0 (flat regions vanish); the others to 1 (brightness kept).
        assert kernel.weights.sum() == pytest.approx(0.0 if kernel.is_edge else 1.0), name
        assert len(kernel.meaning) > 15, name


def torch_filter(
    image: np.ndarray, kernel: np.ndarray, stride: int, padding: int, mode: str
) -> np.ndarray:
    """The oracle: torch's conv2d on each channel, with torch's padding."""
    planes = torch.tensor(
        image if image.ndim == 3 else image[..., None], dtype=torch.float64
    ).permute(2, 0, 1)
    planes = F.pad(planes[:, None], (padding,) * 4, mode=mode)
    out = (
        F.conv2d(planes, torch.tensor(kernel)[None, None], stride=stride)[:, 0]
        .permute(1, 2, 0)
        .numpy()
    )
    return out if image.ndim == 3 else out[..., 0]


@pytest.mark.parametrize("shape", [(17, 23), (12, 9, 3)])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize(("pad_mode", "torch_mode"), [("zeros", "constant"), ("edge", "replicate")])
def test_apply_kernel_matches_torch_per_channel(shape, stride, pad_mode, torch_mode) -> None:
    image = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    for kernel in (SOBEL_Y, EMBOSS, GAUSSIAN_BLUR_3):
        ours = apply_kernel(image, kernel, stride=stride, pad_mode=pad_mode)
        expected = torch_filter(image, kernel, stride, 1, torch_mode)
        assert ours.shape == expected.shape
        assert ours.shape[:2] == (-(-shape[0] // stride), -(-shape[1] // stride))  # "same"
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-9)


def test_apply_kernel_valid_and_integer_padding() -> None:
    image = np.arange(30.0).reshape(5, 6)
    assert apply_kernel(image, BOX_BLUR_3, padding="valid").shape == (3, 4)
    assert apply_kernel(image, BOX_BLUR_3, padding=2).shape == (7, 8)
    # Box blur of a linear ramp is the ramp itself, away from the border.
    np.testing.assert_allclose(apply_kernel(image, BOX_BLUR_3, padding="valid"), image[1:-1, 1:-1])


def test_sobel_y_finds_a_horizontal_edge_and_sobel_x_does_not() -> None:
    image = np.zeros((20, 20))
    image[10:] = 200.0  # dark above, bright below: a horizontal edge between rows 9 and 10
    gy = apply_kernel(image, SOBEL_Y, pad_mode="edge")
    gx = apply_kernel(image, SOBEL_X, pad_mode="edge")
    np.testing.assert_allclose(gy[9], 800.0)  # (1 + 2 + 1) * 200: bottom minus top
    np.testing.assert_allclose(gy[10], 800.0)
    assert np.abs(np.delete(gy, [9, 10], axis=0)).max() == 0
    assert np.abs(gx).max() == 0
    # Flipped edge (bright above): the response changes sign, the magnitude does not.
    flipped = apply_kernel(image[::-1], SOBEL_Y, pad_mode="edge")
    np.testing.assert_array_equal(to_uint8(flipped, True), to_uint8(gy, True)[::-1])


def test_parse_kernel_names_numbers_and_errors() -> None:
    assert parse_kernel("Sobel-Y").weights is SOBEL_Y
    custom = parse_kernel("1,0,-1,2,0,-2,1,0,-1")
    np.testing.assert_array_equal(custom.weights, -SOBEL_X)
    assert custom.is_edge
    assert not parse_kernel("0 0 0 0 1 0 0 0 0").is_edge  # identity, spaces work too
    with pytest.raises(ValueError, match=r"3x3 = 9 numbers, got 4"):
        parse_kernel("1,2,3,4")
    with pytest.raises(ValueError, match=r"neither a known name.*sobel-y"):
        parse_kernel("sobel-z")


def test_apply_kernel_rejects_bad_shapes_naming_them() -> None:
    with pytest.raises(ValueError, match=r"image shape \(2, 3, 4, 5\)"):
        apply_kernel(np.zeros((2, 3, 4, 5)), SOBEL_X)
    with pytest.raises(ValueError, match=r"kernel \(3, 3\).*padded input \(2, 2\)"):
        apply_kernel(np.zeros((2, 2)), SOBEL_X, padding="valid")
