"""Featurize and train one loss from validated params: what the ``featurize`` and ``train@<loss>`` stages call."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from lossbench import paths
from lossbench.config import LossSpec, Params
from lossbench.data.store import load_processed
from lossbench.data.transforms import build_eval_transform, build_train_transform
from lossbench.errors import LossbenchError
from lossbench.io import atomic_write_json
from lossbench.losses import LossContext, create_loss
from lossbench.models import EmbeddingModel
from lossbench.training.builder import build_model
from lossbench.training.checkpoint import save_model
from lossbench.training.encoders import Encoder, FeatureEncoder, ImageEncoder
from lossbench.training.features import FeatureCache, cache_key, clear_cache, compute_features, load_cache, save_cache
from lossbench.training.logging import DvcLiveLogger
from lossbench.training.trainer import Trainer, TrainSettings, ValidationSet, config_hash


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(model: EmbeddingModel, device: torch.device) -> EmbeddingModel:
    """Move the model; on a GPU also switch to channels_last (the encoders feed channels_last batches)."""
    if device.type == "cuda":
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


@dataclass
class Splits:
    """Row views of the processed manifest used by training."""

    images: np.ndarray
    train: pd.DataFrame
    val: pd.DataFrame

    @classmethod
    def load(cls) -> "Splits":
        images, manifest = load_processed(paths.PROCESSED)
        train = manifest[manifest["split"] == "train"]
        val = manifest[(manifest["split"] == "val") & manifest["role"].isin(["query", "gallery"])]
        if train["label"].nunique() < 2:
            raise LossbenchError("the train split has fewer than 2 identities; lower data.val_ids/data.test_ids or add data.")
        return cls(images, train, val)

    @property
    def train_labels(self) -> np.ndarray:
        """Train labels renumbered 0..C-1 (classification losses need contiguous class ids)."""
        return np.unique(self.train["label"].to_numpy(), return_inverse=True)[1]

    @property
    def class_names(self) -> tuple[str, ...]:
        """Identity name of each class id of :attr:`train_labels` (class c = the c-th smallest label)."""
        names = self.train.groupby("label")["identity"].first().sort_index()
        return tuple(names.astype(str))

    @property
    def eval_rows(self) -> np.ndarray:
        return np.sort(self.val["row"].to_numpy())


def transforms_for(model: EmbeddingModel, train_cfg: Any):
    backbone = model.backbone
    aug = train_cfg.augment
    train_tf = build_train_transform(backbone.input_size, backbone.mean, backbone.std,
                                     crop_scale=tuple(aug.crop_scale), hflip=aug.hflip, color_jitter=aug.color_jitter)
    return train_tf, build_eval_transform(backbone.input_size, backbone.mean, backbone.std)


def data_fingerprint() -> str:
    """Identifies the processed data set (its manifest holds every row's content hash and split)."""
    return hashlib.sha1((paths.PROCESSED / "manifest.csv").read_bytes()).hexdigest()[:16]


def _cache_key(params: Params, spec_or_params: Any) -> dict[str, Any]:
    return {**cache_key(spec_or_params.model, spec_or_params.train, params.data.image_size, params.seed),
            "data": data_fingerprint()}


def featurize(params: Params) -> str:
    """Cache backbone features for the frozen-backbone losses that use the global ``model`` settings.

    The output is persistent: when the cache already matches (same backbone, views, augmentation,
    data), nothing is recomputed, so tuning a loss option never re-runs an expensive backbone.
    """
    key = _cache_key(params, params)
    users = [s.name for s in params.loss_specs() if s.trains and s.model.freeze and _cache_key(params, s) == key]
    if not users:
        clear_cache(paths.FEATURES)
        note = "no frozen-backbone loss uses the global model settings; nothing to cache"
        atomic_write_json(paths.FEATURES / "meta.json", {"cached": False, "reason": note})
        return note
    splits = Splits.load()
    existing = load_cache(paths.FEATURES, key)
    if existing is not None:
        return f"feature cache for {', '.join(users)} is up to date ({params.model.backbone})"
    set_threads(params.train.threads)
    device = pick_device()
    model = to_device(build_model(params.model, params.data.image_size, params.seed), device)
    train_tf, eval_tf = transforms_for(model, params.train)
    cache = compute_features(model, splits.images, splits.train["row"].to_numpy(), splits.eval_rows, train_tf, eval_tf,
                             params.train.feature_views, params.train.eval_batch_size, params.seed, device)
    save_cache(paths.FEATURES, cache, key)
    views, n, dim = cache.train.shape
    return (f"cached {views} view(s) x {n} train + {len(cache.eval_rows)} val features of dim {dim} "
            f"({params.model.backbone}) for {', '.join(users)}")


def _frozen_cache(params: Params, spec: LossSpec, model: EmbeddingModel, splits: Splits, device) -> FeatureCache:
    cache = load_cache(paths.FEATURES, _cache_key(params, spec))
    if cache is not None:
        print(f"using cached backbone features from {paths.FEATURES}")
        return cache
    print(f"{spec.name}: no matching shared feature cache (backbone settings differ); computing features for this loss")
    train_tf, eval_tf = transforms_for(model, spec.train)
    return compute_features(model, splits.images, splits.train["row"].to_numpy(), splits.eval_rows, train_tf, eval_tf,
                            spec.train.feature_views, spec.train.eval_batch_size, params.seed, device)


def _encoders(params: Params, spec: LossSpec, model: EmbeddingModel, splits: Splits,
              device) -> tuple[Encoder, Encoder]:
    """(train encoder, validation encoder over ``splits.val`` rows)."""
    if spec.model.freeze:
        cache = _frozen_cache(params, spec, model, splits, device)
        return FeatureEncoder(cache.train, device), FeatureEncoder(cache.eval_features(splits.val["row"].to_numpy()), device)
    train_tf, eval_tf = transforms_for(model, spec.train)
    return (ImageEncoder(splits.images, splits.train["row"].to_numpy(), train_tf, device),
            ImageEncoder(splits.images, splits.val["row"].to_numpy(), eval_tf, device))


def _validation(encoder: Encoder, splits: Splits) -> ValidationSet | None:
    if splits.val.empty:
        return None
    return ValidationSet(encoder, splits.val["label"].to_numpy(), (splits.val["role"] == "query").to_numpy())


def train_loss(params: Params, name: str) -> str:
    """Train loss ``name`` (or, for ``baseline``, just record the raw backbone) and save its best model."""
    spec = params.resolve_loss(name)
    set_threads(spec.train.threads)
    splits = Splits.load()
    device = pick_device()
    model = to_device(build_model(spec.model, params.data.image_size, params.seed), device)
    settings = TrainSettings.from_config(spec.train, params.seed)
    config = {**spec.as_dict(), "image_size": params.data.image_size, "seed": params.seed,
              "num_classes": int(splits.train["label"].nunique()), "data": data_fingerprint()}
    out_dir = paths.model_dir(name)
    logger = DvcLiveLogger(paths.train_log_dir(name))

    if not spec.trains:
        _, eval_tf = transforms_for(model, spec.train)
        encoder = ImageEncoder(splits.images, splits.val["row"].to_numpy(), eval_tf, device,
                               call="backbone_features_normalised")
        validation = _validation(encoder, splits)
        metrics = validation.evaluate(model, settings.eval_batch_size) if validation else {}
        logger.log_epoch(0, {"train_loss": 0.0, **metrics})
        logger.close()
        summary = {"epochs_trained": 0, "best_epoch": 0, **metrics}
        save_model(out_dir, model.state_dict(), {**config, "summary": summary})
        atomic_write_json(out_dir / "summary.json", summary)
        return f"{name}: no training (raw backbone features); val {_fmt(metrics)}"

    context = LossContext(class_names=splits.class_names, backbone=spec.model.backbone, pretrained=spec.model.pretrained)
    loss_fn = create_loss(spec.type, num_classes=config["num_classes"], embed_dim=spec.model.embed_dim,
                          context=context, **spec.options).to(device)
    train_encoder, val_encoder = _encoders(params, spec, model, splits, device)
    trainer = Trainer(model, loss_fn, train_encoder, splits.train_labels, settings,
                      validation=_validation(val_encoder, splits),
                      resume_file=paths.CHECKPOINTS / name / "last.pt", run_key=config_hash(config),
                      logger=logger, desc=name)
    result = trainer.fit()
    logger.close()
    best = {k: v for k, v in result.history[result.best_epoch].items()} if result.best_epoch >= 0 else {}
    summary = {**result.summary(settings.monitor), **{k: v for k, v in best.items() if k.startswith("val_")}}
    save_model(out_dir, result.best_state, {**config, "summary": summary})
    atomic_write_json(out_dir / "summary.json", summary)
    return (f"{name}: {result.epochs_trained} epochs, best epoch {result.best_epoch + 1}, "
            f"val {_fmt({k: v for k, v in best.items() if k.startswith('val_')})}")


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k.removeprefix('val_')}={v:.3f}" for k, v in metrics.items()) or "n/a"
