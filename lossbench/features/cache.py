"""The feature cache: backbone features computed once and shared by every run on a frozen backbone.

Train rows get ``views`` feature sets (view 0 un-augmented, the others augmented with the training
transform, each view seeded) so that training a head on cached features still sees augmentation. Every
other row (val, test, challenge) gets one un-augmented feature vector, so a frozen run's validation and
embedding never run the backbone again. The cache remembers what produced it (:func:`cache_key`); a run
whose backbone settings differ computes its own features.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lossbench.core.io import atomic_save_npy, atomic_write_json
from lossbench.features.encoders import ImageEncoder, encode_all

META = "meta.json"
ARRAYS = ("train_rows", "train", "eval_rows", "eval")


def cache_key(
    model_cfg: Any, train_cfg: Any, image_size: int, backbone_seed: int, data: str, weights: str | None
) -> dict[str, Any]:
    """Everything the cached features depend on (``data``: the processed set's fingerprint; ``weights``: the
    pretrained weights file's content hash, when there is a file)."""
    return {
        "backbone": model_cfg.backbone,
        "pretrained": model_cfg.pretrained,
        "weights": weights,
        "input_size": model_cfg.input_size or image_size,
        "seed": backbone_seed,
        "views": train_cfg.feature_views,
        "augment": {
            "crop_scale": list(train_cfg.augment.crop_scale),
            "hflip": train_cfg.augment.hflip,
            "color_jitter": train_cfg.augment.color_jitter,
        },
        "data": data,
    }


@dataclass
class FeatureCache:
    train_rows: np.ndarray  # [n_train]
    train: np.ndarray  # [views, n_train, dim]
    eval_rows: np.ndarray  # [n_eval]: every non-train row
    eval: np.ndarray  # [n_eval, dim]

    def eval_features(self, rows: np.ndarray) -> np.ndarray:
        """Features of the given (non-train) rows, in that order."""
        position = {int(r): i for i, r in enumerate(self.eval_rows)}
        return self.eval[[position[int(r)] for r in rows]]


def compute_features(
    model: torch.nn.Module,
    images: np.ndarray,
    train_rows: np.ndarray,
    eval_rows: np.ndarray,
    train_transform: Callable,
    eval_transform: Callable,
    views: int,
    batch_size: int,
    seed: int,
    device: torch.device,
) -> FeatureCache:
    """Run the backbone once per view over the train rows and once over the evaluation rows."""
    train_feats = []
    for view in range(views):
        torch.manual_seed(seed * 7919 + view)
        transform = eval_transform if view == 0 else train_transform
        encoder = ImageEncoder(images, train_rows, transform, device, call="features")
        train_feats.append(encode_all(model, encoder, batch_size, progress=f"features view {view + 1}/{views}"))
    eval_encoder = ImageEncoder(images, eval_rows, eval_transform, device, call="features")
    eval_feats = encode_all(model, eval_encoder, batch_size, progress="features eval")
    return FeatureCache(np.asarray(train_rows), np.stack(train_feats), np.asarray(eval_rows), eval_feats)


def clear_cache(directory: str | Path) -> None:
    """Remove cached arrays (the folder stays: it is a pipeline output)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in (*ARRAYS, "meta"):
        for path in directory.glob(f"{name}.*"):
            path.unlink()


def save_cache(directory: str | Path, cache: FeatureCache, key: dict[str, Any]) -> None:
    directory = Path(directory)
    clear_cache(directory)
    for name in ARRAYS:
        atomic_save_npy(directory / f"{name}.npy", getattr(cache, name))
    atomic_write_json(directory / META, key)


def load_cache(directory: str | Path, key: dict[str, Any]) -> FeatureCache | None:
    """The cache in ``directory`` if it was computed for ``key``, else None."""
    directory = Path(directory)
    meta = directory / META
    if not meta.is_file() or json.loads(meta.read_text(encoding="utf-8")) != json.loads(json.dumps(key)):
        return None
    arrays = {name: np.load(directory / f"{name}.npy") for name in ARRAYS}
    return FeatureCache(**arrays)
