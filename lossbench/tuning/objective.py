"""One trial's training: a loss trained with given values and training seed, validated per epoch.

Everything the trials of a loss share is loaded once (:class:`TrialData`): the splits, the feature cache of a frozen
backbone (in memory) and the device, so a frozen-head trial pays only for its epochs. A run here is the run the
train stage makes with the same values and seed (same model, loss and trainer), minus the files it writes.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import torch

from lossbench.config.params import LossSpec, Params
from lossbench.core.errors import LossbenchError
from lossbench.core.runtime import pick_device
from lossbench.features.cache import FeatureCache
from lossbench.features.runs import Splits, build_run_head, build_run_model
from lossbench.training.train import make_loss, run_cache, train_encoder, validation_set
from lossbench.training.trainer import EpochHook, Trainer, TrainResult, TrainSettings


@dataclass
class TrialData:
    """The splits, the frozen backbone's feature cache (None when the backbone trains) and the device."""

    params: Params
    splits: Splits
    cache: FeatureCache | None
    device: torch.device

    @classmethod
    def load(cls, params: Params, spec: LossSpec, seed: int) -> TrialData:
        splits, device = Splits.load(), pick_device()
        return cls(params, splits, run_cache(params, spec, seed, splits, device), device)

    def train(self, spec: LossSpec, seed: int, on_epoch: EpochHook | None = None) -> TrainResult:
        """Train ``spec`` with training seed ``seed`` (validated after every epoch, ``on_epoch`` then called)."""
        if self.cache is not None:
            model = build_run_head(spec, seed, self.cache.train.shape[-1], self.device)
        else:
            model = build_run_model(self.params, spec, seed, self.device)
        validation = validation_set(model, self.splits, self.cache, self.device, self.params.evaluate.protocol)
        if validation is None:
            raise LossbenchError("tuning needs a val split with queries and gallery; raise data.val_ids")
        loss_fn = make_loss(spec, self.splits, self.device)
        trainer = Trainer(
            model,
            loss_fn,
            train_encoder(spec, model, self.splits, self.cache, self.device),
            self.splits.train_labels,
            TrainSettings.from_config(spec.train, seed),
            validation=validation,
            desc=f"tune {spec.name} seed {seed}",
            on_epoch=on_epoch,
        )
        with contextlib.redirect_stdout(io.StringIO()):  # the per-epoch lines; the study prints one per trial
            return trainer.fit()
