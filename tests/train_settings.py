"""Training-loop settings for tests: ``TrainSettings`` has no defaults (params.yaml gives them); these are small."""

from __future__ import annotations

from typing import Any

from lossbench.training.trainer import TrainSettings

SMALL: dict[str, Any] = {
    "epochs": 8,
    "ids_per_batch": 4,
    "images_per_id": 4,
    "lr": 1e-2,
    "weight_decay": 1e-4,
    "backbone_lr_mult": 1.0,
    "warmup_epochs": 1,
    "grad_clip": 5.0,
    "patience": 50,
    "monitor": "val_top1",
    "eval_batch_size": 256,
    "seed": 0,
}


def train_settings(**overrides: Any) -> TrainSettings:
    """:data:`SMALL` with ``overrides``."""
    unknown = overrides.keys() - SMALL.keys()
    if unknown:
        raise TypeError(f"unknown training settings: {sorted(unknown)}")
    return TrainSettings(**{**SMALL, **overrides})
