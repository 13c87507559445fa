"""Train / eval image transforms: shapes, normalisation, determinism, no vertical flip."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from lossbench.core.errors import LossbenchError
from lossbench.data.transforms import build_eval_transform, build_train_transform

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _half_bright(size: int = 64, axis: int = 0) -> np.ndarray:
    """Top half (axis 0) or left half (axis 1) white, the rest black."""
    image = np.zeros((size, size, 3), dtype=np.uint8)
    if axis == 0:
        image[: size // 2] = 255
    else:
        image[:, : size // 2] = 255
    return image


def test_eval_output_shape_dtype_and_normalisation():
    image = np.empty((64, 64, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 128, 250
    out = build_eval_transform(64, MEAN, STD)(image)
    assert type(out) is torch.Tensor and out.dtype == torch.float32 and out.shape == (3, 64, 64)
    expected = [(v / 255 - m) / s for v, m, s in zip((10, 128, 250), MEAN, STD)]
    for channel, value in enumerate(expected):
        torch.testing.assert_close(out[channel], torch.full((64, 64), value))


def test_eval_keeps_pixels_in_place_and_resizes_other_sizes():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    same = build_eval_transform(32, (0, 0, 0), (1, 1, 1))(image)
    torch.testing.assert_close(same, torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    assert build_eval_transform(64, MEAN, STD)(image).shape == (3, 64, 64)


def test_train_output_shape_and_resize():
    image = np.random.default_rng(1).integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    torch.manual_seed(0)
    out = build_train_transform(64, MEAN, STD)(image)
    assert type(out) is torch.Tensor and out.dtype == torch.float32 and out.shape == (3, 64, 64)


def test_train_is_deterministic_under_seed_and_random_across_seeds():
    image = np.random.default_rng(2).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    transform = build_train_transform(64, MEAN, STD)
    torch.manual_seed(7)
    first = [transform(image) for _ in range(3)]
    torch.manual_seed(7)
    second = [transform(image) for _ in range(3)]
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], first[1])


def test_train_never_flips_vertically():
    transform = build_train_transform(64, (0, 0, 0), (1, 1, 1), crop_scale=(0.5, 1.0), color_jitter=0.4)
    image = _half_bright(axis=0)
    torch.manual_seed(0)
    for _ in range(200):
        out = transform(image)
        assert out[:, :16].mean() > out[:, -16:].mean()


@pytest.mark.parametrize(("hflip", "expect_flips"), [(True, True), (False, False)])
def test_horizontal_flip_switch(hflip, expect_flips):
    transform = build_train_transform(64, (0, 0, 0), (1, 1, 1), hflip=hflip, color_jitter=0.0)
    image = _half_bright(axis=1)
    torch.manual_seed(0)
    flipped = [bool(out[:, :, :16].mean() < out[:, :, -16:].mean()) for out in (transform(image) for _ in range(40))]
    assert any(flipped) is expect_flips
    if hflip:
        assert not all(flipped)


def test_read_only_memmap_rows_are_accepted_without_warnings(tmp_path):
    images = np.random.default_rng(3).integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    stored = np.load(tmp_path / "images.npy", mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = build_eval_transform(16, (0, 0, 0), (1, 1, 1))(stored[1])
    torch.testing.assert_close(out, torch.from_numpy(images[1]).permute(2, 0, 1).float() / 255)


@pytest.mark.parametrize(
    "image",
    [np.zeros((8, 8), dtype=np.uint8), np.zeros((8, 8, 4), dtype=np.uint8), np.zeros((8, 8, 3), dtype=np.float32)],
)
def test_bad_arrays_are_rejected(image):
    with pytest.raises(LossbenchError, match="uint8 H×W×3"):
        build_eval_transform(8, MEAN, STD)(image)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"input_size": 0}, "input size")],  # crop_scale and color_jitter are checked when params load (test_config)
)
def test_bad_train_options(kwargs, pattern):
    with pytest.raises(LossbenchError, match=pattern):
        build_train_transform(**{"input_size": 64, "mean": MEAN, "std": STD, **kwargs})
