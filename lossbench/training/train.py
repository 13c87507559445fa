"""Train one run (a loss × a training seed) from validated params: what the ``train@<loss>-<seed>`` stage calls.

Every row of the comparison follows the same path: the model is built (the untrained ``baseline`` gets the
normalise-only head), validated on the val split, and saved with its resolved config; only a loss with a
training objective goes through the training loop in between. Under torchrun every rank trains (data-parallel)
and rank 0 alone writes; the others wait at a barrier until it has.
"""

from __future__ import annotations

import warnings

import torch

from lossbench.config.params import LossSpec, Params
from lossbench.core import paths
from lossbench.core.io import atomic_write_json
from lossbench.core.runtime import pick_device
from lossbench.data.checks import val_ranking_problem
from lossbench.features.cache import FeatureCache
from lossbench.features.encoders import Encoder, FeatureEncoder, ImageEncoder
from lossbench.features.runs import (
    Splits,
    build_run_head,
    build_run_model,
    eval_encoder,
    features_for,
    frozen_backbone,
    run_config,
    shared_cache,
    transforms_for,
)
from lossbench.losses import LossContext, create_loss
from lossbench.models import EmbeddingModel, HeadModel
from lossbench.models.checkpoint import save_model
from lossbench.training import distributed
from lossbench.training.logging import DvcLiveLogger
from lossbench.training.trainer import Trainer, TrainSettings, ValidationSet, config_hash


def run_cache(params: Params, spec: LossSpec, seed: int, splits: Splits, device) -> FeatureCache | None:
    """Cached backbone features for a frozen run: the shared cache, or (other backbone settings) its own."""
    if not frozen_backbone(spec):
        return None
    cache = shared_cache(params, spec, seed)
    if cache is not None:
        print(f"using cached backbone features from {paths.FEATURES}")
        return cache
    print(f"{spec.name}: no matching shared feature cache (backbone settings differ); computing features for this run")
    return features_for(build_run_model(params, spec, seed, device), splits, spec.train, params.seed, device)


def train_encoder(
    spec: LossSpec, model: EmbeddingModel | HeadModel, splits: Splits, cache: FeatureCache | None, device
) -> Encoder:
    if cache is not None:
        return FeatureEncoder(cache.train, device)
    train_tf, _ = transforms_for(model, spec.train)
    return ImageEncoder(splits.images, splits.train["row"].to_numpy(), train_tf, device)


def validation_set(
    model: EmbeddingModel | HeadModel, splits: Splits, cache: FeatureCache | None, device, protocol: str
) -> ValidationSet | None:
    """The val split as the trainer scores it (``evaluate.protocol``); None when it cannot rank (a warning says why)."""
    if splits.val.empty:
        return None
    problem = val_ranking_problem(splits.val)
    if problem:  # like no val split: the trainer keeps the last epoch
        warnings.warn(problem, UserWarning, stacklevel=2)
        return None
    encoder = eval_encoder(model, splits.images, splits.val["row"].to_numpy(), cache, device)
    is_query = (splits.val["role"] == "query").to_numpy()
    return ValidationSet(encoder, splits.val["label"].to_numpy(), is_query, all_vs_all=protocol == "all_vs_all")


def make_loss(spec: LossSpec, splits: Splits, device) -> torch.nn.Module:
    """The loss of ``spec`` for the train split's classes (its own weights, if any, on ``device``)."""
    context = LossContext(
        class_names=splits.class_names, backbone=spec.model.backbone, pretrained=spec.model.pretrained
    )
    num_classes = int(splits.train["label"].nunique())
    return create_loss(
        spec.type, num_classes=num_classes, embed_dim=spec.model.embed_dim, context=context, **spec.options
    ).to(device)


def train_run(params: Params, spec: LossSpec, seed: int) -> str:
    """Train ``spec`` (a resolved loss, its tuned values applied) with training seed ``seed`` (``baseline``: validate
    only) and save the kept model; its checkpoint config records the values it trained with."""
    name = spec.name
    splits = Splits.load()
    device = pick_device()
    settings = TrainSettings.from_config(spec.train, seed)
    cache = run_cache(params, spec, seed, splits, device)
    if cache is not None:  # frozen backbone: the head alone trains and is saved
        model = build_run_head(spec, seed, cache.train.shape[-1], device)
    else:
        model = build_run_model(params, spec, seed, device)
    num_features = cache.train.shape[-1] if cache is not None else model.backbone.num_features
    config = run_config(params, spec, seed, int(splits.train["label"].nunique()), num_features)
    validation = validation_set(model, splits, cache, device, params.evaluate.protocol)
    label = f"{name} seed {seed}"

    if not spec.trains:
        metrics = validation.evaluate(model, settings.eval_batch_size) if validation else {}
        summary = {"epochs_trained": 0, "best_epoch": 0, **metrics}
        state, note = model.state_dict(), f"no training (backbone features); val {_fmt(metrics)}"
    else:
        loss_fn = make_loss(spec, splits, device)
        logger = DvcLiveLogger(paths.train_log_dir(name, seed)) if distributed.is_main() else None
        trainer = Trainer(
            model,
            loss_fn,
            train_encoder(spec, model, splits, cache, device),
            splits.train_labels,
            settings,
            validation=validation,
            resume_file=paths.checkpoint_file(name, seed),
            run_key=config_hash(config),
            logger=logger,
            desc=label,
        )
        result = trainer.fit()
        if logger:
            logger.close()
        best = result.history[result.best_epoch] if result.best_epoch >= 0 else {}
        kept = {k: v for k, v in best.items() if k.startswith("val_")}
        summary = {**result.summary(settings.monitor), **kept}
        state = result.best_state
        note = f"{result.epochs_trained} epochs, best epoch {result.best_epoch + 1}, val {_fmt(kept)}"
    if distributed.is_main():
        save_model(paths.model_dir(name, seed), state, {**config, "summary": summary})
        atomic_write_json(paths.train_log_dir(name, seed) / "summary.json", summary)
    distributed.barrier()
    return f"{label}: {note}"


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k.removeprefix('val_')}={float(v):.3f}" for k, v in metrics.items()) or "n/a"
