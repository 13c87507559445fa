"""Inference paths: a frozen run embeds from the feature cache exactly as through the backbone; weights hashes."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lossbench.data.transforms import build_eval_transform, build_train_transform
from lossbench.features.cache import compute_features
from lossbench.features.encoders import encode_all
from lossbench.features.runs import eval_encoder
from lossbench.models.builder import build_model
from lossbench.models.resolve import packaged_weights_files
from lossbench.models.weights import file_digest, weights_fingerprint, weights_record

CPU = torch.device("cpu")


def tiny_model(backbone: str, pretrained: str | None, size: int, head: str = "mlp"):
    cfg = SimpleNamespace(
        backbone=backbone, pretrained=pretrained, freeze=True, input_size=None, embed_dim=8, hidden=16, dropout=0.3
    )
    return build_model(cfg, size, 0, 1, head).eval()


@pytest.mark.parametrize(
    ("backbone", "pretrained", "head"),
    [
        ("timm:test_resnet", None, "mlp"),
        ("timm:test_resnet", None, "normalise"),
        ("timm:tf_efficientnet_lite0", "imagenet", "mlp"),  # the default study's backbone
    ],
)
def test_embedding_from_the_feature_cache_equals_the_full_forward(backbone, pretrained, head):
    size = 32
    images = np.random.default_rng(0).integers(0, 256, size=(12, size, size, 3), dtype=np.uint8)
    model = tiny_model(backbone, pretrained, size, head)
    b = model.backbone
    eval_tf = build_eval_transform(b.input_size, b.mean, b.std)
    train_tf = build_train_transform(b.input_size, b.mean, b.std, crop_scale=(0.8, 1.0), hflip=True, color_jitter=0.2)
    rows = np.array([1, 3, 4, 7, 8, 10, 11])
    cache = compute_features(
        model, images, np.array([0, 2]), rows, train_tf, eval_tf, views=2, batch_size=4, seed=0, device=CPU
    )
    wanted = np.array([10, 3, 8])  # any subset, any order
    from_cache = encode_all(model, eval_encoder(model, images, wanted, cache, CPU), batch_size=2)
    from_images = encode_all(model, eval_encoder(model, images, wanted, None, CPU), batch_size=5)
    assert from_cache.shape == (3, model.embed_dim)
    np.testing.assert_allclose(from_cache, from_images, rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(from_cache, axis=1), 1.0, atol=1e-6)


def test_weights_fingerprint_follows_the_file_content(tmp_path):
    [packaged] = packaged_weights_files("timm:tf_efficientnet_lite0", "imagenet")
    default = SimpleNamespace(backbone="timm:tf_efficientnet_lite0", pretrained="imagenet")
    assert weights_fingerprint(SimpleNamespace(backbone="timm:test_resnet", pretrained=None)) is None
    record = weights_record([default, default])
    assert record == {"timm:tf_efficientnet_lite0 imagenet": {packaged.name: file_digest(packaged)}}

    copy = tmp_path / "weights.pth"
    shutil.copy(packaged, copy)
    as_file = SimpleNamespace(backbone="timm:tf_efficientnet_lite0", pretrained=str(copy))
    same = weights_fingerprint(as_file)
    assert same == weights_fingerprint(default)  # the same bytes: the same fingerprint, whatever the path
    with open(copy, "ab") as handle:
        handle.write(b"\0")
    assert weights_fingerprint(as_file) != same  # new weights: the feature cache and DVC see a change
