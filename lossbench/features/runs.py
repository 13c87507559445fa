"""What featurize, train and embed share about a run (one loss × one training seed): its model and its inputs.

- The backbone of a run that never trains it (``freeze: true``, or the untrained ``baseline``) is seeded with
  the identity-split ``seed``, so every such run shares one backbone and one feature cache; a fine-tuned
  backbone is seeded with the run's training seed. The head is seeded with the training seed.
- A run on a frozen backbone reads the feature cache (train views, val, test, challenge rows) whenever the
  cache was made with its backbone settings; otherwise (or with flip TTA at embed time) images go through
  the backbone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from lossbench.config.params import LossSpec, Params
from lossbench.core import paths
from lossbench.core.errors import LossbenchError
from lossbench.core.runtime import to_device
from lossbench.data.store import load_processed
from lossbench.features.cache import FeatureCache, cache_key, load_cache
from lossbench.features.encoders import Encoder, FeatureEncoder, ImageEncoder
from lossbench.models import EmbeddingModel, HeadModel
from lossbench.models.builder import build_head_model, build_model, head_kind
from lossbench.models.checkpoint import FULL, HEAD_ONLY
from lossbench.models.weights import weights_fingerprint

HEAD_SEED_OFFSET = 1
"""The head of training seed s is initialised after ``torch.manual_seed(s + HEAD_SEED_OFFSET)``."""


def frozen_backbone(spec: LossSpec) -> bool:
    """Whether the run never updates its backbone (so cached features can stand in for it)."""
    return spec.model.freeze or not spec.trains


def backbone_seed(params: Params, spec: LossSpec, seed: int) -> int:
    return params.seed if frozen_backbone(spec) else seed


def build_run_model(params: Params, spec: LossSpec, seed: int, device: torch.device) -> EmbeddingModel:
    model = build_model(
        spec.model,
        params.data.image_size,
        backbone_seed(params, spec, seed),
        seed + HEAD_SEED_OFFSET,
        head_kind(spec.trains),
    )
    return to_device(model, device)


def build_run_head(spec: LossSpec, seed: int, num_features: int, device: torch.device) -> HeadModel:
    """The head of a frozen-backbone run alone (it trains and embeds on cached features)."""
    return build_head_model(spec.model, num_features, seed + HEAD_SEED_OFFSET, head_kind(spec.trains)).to(device)


def run_config(params: Params, spec: LossSpec, seed: int, num_classes: int, num_features: int) -> dict[str, Any]:
    """What a checkpoint records about its run: enough to rebuild its model (frozen: the backbone from its
    pretrained weights or seed, the head from the checkpoint; fine-tuned: every weight from the checkpoint)."""
    return {
        **spec.as_dict(),
        "seed": seed,
        "backbone_seed": backbone_seed(params, spec, seed),
        "head_seed": seed + HEAD_SEED_OFFSET,
        "head": head_kind(spec.trains),
        "checkpoint": HEAD_ONLY if frozen_backbone(spec) else FULL,
        "num_features": num_features,
        "image_size": params.data.image_size,
        "num_classes": num_classes,
        "data": data_fingerprint(),
    }


@dataclass
class Splits:
    """Row views of the processed manifest used by training and validation."""

    images: np.ndarray
    manifest: pd.DataFrame
    train: pd.DataFrame
    val: pd.DataFrame

    @classmethod
    def load(cls) -> Splits:
        images, manifest = load_processed(paths.PROCESSED)
        train = manifest[manifest["split"] == "train"]
        val = manifest[(manifest["split"] == "val") & manifest["role"].isin(["query", "gallery"])]
        if train["label"].nunique() < 2:
            raise LossbenchError(
                "the train split has fewer than 2 identities; lower data.val_ids/data.test_ids or add data."
            )
        return cls(images, manifest, train, val)

    @property
    def eval_rows(self) -> np.ndarray:
        """Every row outside the train split (val, test, challenge): the rows the cache holds one view of."""
        return np.sort(self.manifest.loc[self.manifest["split"] != "train", "row"].to_numpy())

    @property
    def train_labels(self) -> np.ndarray:
        """Train labels renumbered 0..C-1 (classification losses need contiguous class ids)."""
        return np.unique(self.train["label"].to_numpy(), return_inverse=True)[1]

    @property
    def class_names(self) -> tuple[str, ...]:
        """Identity name of each class id of :attr:`train_labels` (class c = the c-th smallest label)."""
        names = self.train.groupby("label")["identity"].first().sort_index()
        return tuple(names.astype(str))


def data_fingerprint() -> str:
    """Identifies the processed data set (its manifest holds every row's content hash and split)."""
    return hashlib.sha1((paths.PROCESSED / "manifest.csv").read_bytes()).hexdigest()[:16]


def run_cache_key(params: Params, spec_or_params: Any, seed: int | None = None) -> dict[str, Any]:
    """The feature-cache key of a run (``spec_or_params``: a LossSpec, or Params for the shared cache)."""
    frozen_seed = params.seed if seed is None else backbone_seed(params, spec_or_params, seed)
    return cache_key(
        spec_or_params.model,
        spec_or_params.train,
        params.data.image_size,
        frozen_seed,
        data_fingerprint(),
        weights_fingerprint(spec_or_params.model),
    )


def shared_cache(params: Params, spec: LossSpec, seed: int) -> FeatureCache | None:
    """The feature cache, if the run has a frozen backbone and the cache was made for its backbone settings."""
    if not frozen_backbone(spec):
        return None
    return load_cache(paths.FEATURES, run_cache_key(params, spec, seed))


def transforms_for(model: EmbeddingModel, train_cfg: Any):
    """(train transform with the configured augmentation, eval transform) at the backbone's input size."""
    from lossbench.data.transforms import build_eval_transform, build_train_transform

    backbone = model.backbone
    aug = train_cfg.augment
    train_tf = build_train_transform(
        backbone.input_size,
        backbone.mean,
        backbone.std,
        crop_scale=tuple(aug.crop_scale),
        hflip=aug.hflip,
        color_jitter=aug.color_jitter,
    )
    return train_tf, build_eval_transform(backbone.input_size, backbone.mean, backbone.std)


def eval_encoder(
    model: EmbeddingModel | HeadModel,
    images: np.ndarray,
    rows: np.ndarray,
    cache: FeatureCache | None,
    device: torch.device,
) -> Encoder:
    """An encoder of the given non-train rows: cached features through the head, else images through the model."""
    if cache is not None:
        return FeatureEncoder(cache.eval_features(rows), device)
    from lossbench.data.transforms import build_eval_transform

    backbone = model.backbone
    return ImageEncoder(images, rows, build_eval_transform(backbone.input_size, backbone.mean, backbone.std), device)


def features_for(
    model: EmbeddingModel, splits: Splits, train_cfg: Any, split_seed: int, device: torch.device
) -> FeatureCache:
    """Backbone features of every row: ``train_cfg.feature_views`` views of the train rows, one of the others."""
    from lossbench.features.cache import compute_features

    train_tf, eval_tf = transforms_for(model, train_cfg)
    return compute_features(
        model,
        splits.images,
        splits.train["row"].to_numpy(),
        splits.eval_rows,
        train_tf,
        eval_tf,
        train_cfg.feature_views,
        train_cfg.eval_batch_size,
        split_seed,
        device,
    )


def featurize(params: Params, device: torch.device) -> str:
    """Cache backbone features for the frozen-backbone runs that use the global ``model`` settings.

    It reads only the global ``model``, the cache's ``train`` keys (views, augmentation, batch size) and the data:
    a loss option never re-runs it. With ``model.freeze: false`` nothing is cached (a loss that freezes its own
    backbone, or ``baseline``, computes its features in its train stage). The output is persistent: when the cache
    already matches (same backbone, weights, views, augmentation, data), nothing is recomputed.
    """
    from lossbench.core.io import atomic_write_json
    from lossbench.features.cache import clear_cache, save_cache

    if not params.model.freeze:
        clear_cache(paths.FEATURES)
        note = "model.freeze is false: every run trains its backbone; nothing to cache"
        atomic_write_json(paths.FEATURES / "meta.json", {"cached": False, "reason": note})
        return note
    key = run_cache_key(params, params)
    if load_cache(paths.FEATURES, key) is not None:
        return f"feature cache is up to date ({params.model.backbone})"
    splits = Splits.load()
    model = to_device(
        build_model(params.model, params.data.image_size, params.seed, params.seed + HEAD_SEED_OFFSET, "normalise"),
        device,
    )
    cache = features_for(model, splits, params.train, params.seed, device)
    save_cache(paths.FEATURES, cache, key)
    views, n, dim = cache.train.shape
    return (
        f"cached {views} view(s) x {n} train + {len(cache.eval_rows)} val/test features of dim {dim} "
        f"({params.model.backbone})"
    )
