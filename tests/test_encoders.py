"""Encoders: batched eval transform = per-image transform, encoder inputs, encode_all coverage and flip TTA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lossbench.core.errors import LossbenchError
from lossbench.data.transforms import build_eval_transform, build_train_transform
from lossbench.features.encoders import FeatureEncoder, ImageEncoder, batched_transform, encode_all
from lossbench.models import EmbeddingModel, ProjectionHead
from lossbench.models.backbones import Backbone

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CPU = torch.device("cpu")


def images(count: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)


def pixel_model(size: int, dropout: float = 0.5, seed: int = 0) -> EmbeddingModel:
    """Linear on raw pixels (not mirror-invariant) + a dropout head: eval mode matters, flips change outputs."""
    torch.manual_seed(seed)
    body = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, 6))
    backbone = Backbone(body, 6, mean=MEAN, std=STD, input_size=size, spec="pixels")
    return EmbeddingModel(backbone, ProjectionHead(6, 4, hidden=0, dropout=dropout))


@pytest.mark.parametrize("stored, size", [(16, 16), (20, 16), (16, 24), (24, 40)])
def test_batched_eval_transform_equals_per_image(stored, size):
    batch = images(9, stored)
    transform = build_eval_transform(size, MEAN, STD)
    expected = torch.stack([transform(image) for image in batch])
    got = batched_transform(transform)(batch)
    assert got.shape == (9, 3, size, size) and got.dtype == torch.float32 and got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_batched_path_handles_crops_and_refuses_unknown_orders():
    from torchvision.transforms import v2

    from lossbench.data.transforms import ArrayToImage

    batch = images(5, 20)
    crop = v2.Compose(
        [
            ArrayToImage(),
            v2.Resize(18, antialias=True),
            v2.CenterCrop(16),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(MEAN), list(STD)),
        ]
    )
    torch.testing.assert_close(
        batched_transform(crop)(batch), torch.stack([crop(image) for image in batch]), rtol=0, atol=1e-6
    )
    resize_after_scaling = v2.Compose([ArrayToImage(), v2.ToDtype(torch.float32, scale=True), v2.Resize(16)])
    assert batched_transform(resize_after_scaling) is None  # a float resize may round differently: per image


def test_random_transform_stays_per_image_and_seeded():
    train = build_train_transform(16, MEAN, STD, crop_scale=(0.5, 1.0), hflip=True, color_jitter=0.3)
    assert batched_transform(train) is None
    assert batched_transform(lambda image: torch.zeros(3)) is None

    data, rows = images(12, 16), np.array([11, 3, 7, 0, 5])
    encoder = ImageEncoder(data, rows, train, CPU)
    threads = torch.get_num_threads()
    torch.manual_seed(3)
    got = encoder.inputs(np.array([4, 0, 2]))
    assert torch.get_num_threads() == threads  # the single-threaded loop restores the thread count
    torch.manual_seed(3)
    expected = torch.stack([train(data[r]) for r in (5, 11, 7)])
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.manual_seed(4)
    assert not torch.equal(encoder.inputs(np.array([4, 0, 2])), expected)  # really random


def test_image_encoder_gathers_the_encoders_rows():
    data, rows = images(10, 16), np.array([9, 2, 2, 6])
    transform = build_eval_transform(16, MEAN, STD)
    encoder = ImageEncoder(data, rows, transform, CPU)
    assert len(encoder) == 4
    expected = torch.stack([transform(data[r]) for r in (6, 9, 2)])

    def per_image(image):
        raise AssertionError("a deterministic transform must run once per batch, not once per image")

    encoder.transform = per_image  # the batched path alone must give the per-image result
    torch.testing.assert_close(encoder.inputs(np.array([3, 0, 1])), expected, rtol=0, atol=1e-6)


def test_image_encoder_rejects_bad_arrays_with_the_transform_message():
    floats = np.zeros((3, 16, 16, 3), dtype=np.float32)
    encoder = ImageEncoder(floats, np.arange(3), build_eval_transform(16, MEAN, STD), CPU)
    with pytest.raises(LossbenchError, match="uint8"):
        encoder.inputs(np.array([0, 1]))


def test_feature_encoder_picks_views_and_rows():
    features = np.arange(3 * 5 * 6, dtype=np.float32).reshape(3, 5, 6) / 90
    encoder = FeatureEncoder(features, CPU)
    assert (len(encoder), encoder.views) == (5, 3)
    got = encoder.inputs(np.array([4, 0, 2]), view=np.array([2, 1, 0]))
    np.testing.assert_array_equal(got.numpy(), features[[2, 1, 0], [4, 0, 2]])
    np.testing.assert_array_equal(encoder.inputs(np.array([1, 3])).numpy(), features[0, [1, 3]])

    single = FeatureEncoder(features[1], CPU)  # 2-D features: one view
    assert (len(single), single.views) == (5, 1)
    model = pixel_model(4, dropout=0.0).eval()
    torch.testing.assert_close(
        single.forward(model, single.inputs(np.arange(5))), model.embed_features(torch.from_numpy(features[1]))
    )


@pytest.mark.parametrize("batch_size", [1, 3, 7, 50])
def test_encode_all_covers_every_row_in_eval_mode(batch_size):
    data, rows = images(20, 8), np.arange(19, -1, -2)  # 10 rows: not a multiple of 3 or 7
    model = pixel_model(8).train()
    transform = build_eval_transform(8, MEAN, STD)
    encoder = ImageEncoder(data, rows, transform, CPU)
    with torch.no_grad():
        expected = model.eval()(torch.stack([transform(data[r]) for r in rows])).numpy()
    model.train()

    out = np.full((10, 4), np.nan, dtype=np.float32)
    assert encode_all(model, encoder, batch_size, out=out) is out
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose(encode_all(model, encoder, batch_size), expected, atol=1e-6)
    assert model.training  # the caller's mode is restored


def test_flip_tta_is_the_normalised_mean_of_image_and_mirror():
    data = images(5, 8, seed=1)
    model = pixel_model(8, dropout=0.0)
    transform = build_eval_transform(8, MEAN, STD)
    encoder = ImageEncoder(data, np.arange(5), transform, CPU, call="features")
    with torch.no_grad():
        plain = model.features(torch.stack([transform(image) for image in data]))
        mirror = model.features(torch.stack([transform(np.ascontiguousarray(image[:, ::-1])) for image in data]))
    expected = F.normalize((plain + mirror) / 2, dim=1).numpy()
    got = encode_all(model, encoder, 2, flip_tta=True)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(got, F.normalize(plain, dim=1).numpy(), atol=1e-3)  # the mirror really counts


def test_encode_all_of_nothing_is_empty():
    encoder = FeatureEncoder(np.zeros((1, 0, 4), dtype=np.float32), CPU)
    assert encode_all(pixel_model(4), encoder, 8).shape[0] == 0
