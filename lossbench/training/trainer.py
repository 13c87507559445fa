"""The one training loop every loss shares.

AdamW with per-group learning rates (backbone, head, loss-owned weights), warm-up + cosine schedule,
gradient clipping, early stopping on a validation retrieval metric, the best weights kept, a resume
file written after every epoch (an interrupted run continues to the same result), and per-epoch seeding
so that the same parameters give the same weights on CPU. AMP is used on a GPU; channels_last everywhere.

Under ``torchrun`` with several processes the same loop trains data-parallel (``lossbench.training.distributed``):
every rank draws the same global P×K batches, runs the backbone on its share of the identities, and computes the
head and the loss on the gathered global batch; only rank 0 validates (the others receive its metrics, so early stopping is decided
identically) and writes the resume file and the curves.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lossbench.core.io import atomic_torch_save
from lossbench.data.sampler import PKSampler
from lossbench.features.encoders import Encoder, encode_all
from lossbench.metrics.ranking import evaluate_retrieval
from lossbench.metrics.streaming import evaluate_streaming
from lossbench.training import distributed
from lossbench.training.early_stopping import EarlyStopping
from lossbench.training.schedule import warmup_cosine


class EpochLogger(Protocol):
    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None: ...


@dataclass
class ValidationSet:
    """Validation rows with their labels; ``is_query`` marks queries, the rest is the gallery. ``all_vs_all``: every
    row is a query against all the others instead (``evaluate.protocol``)."""

    encoder: Encoder
    labels: np.ndarray
    is_query: np.ndarray
    all_vs_all: bool = False

    def evaluate(self, model: nn.Module, batch_size: int) -> dict[str, float]:
        emb = encode_all(model, self.encoder, batch_size)
        if self.all_vs_all:
            result = evaluate_streaming(emb, self.labels, topk=(1, 5, 10), resamples=1).metrics
        else:
            q, g = self.is_query, ~self.is_query
            result = evaluate_retrieval(emb[q], self.labels[q], emb[g], self.labels[g], topk=(1, 5, 10))
        return {f"val_{key}": float(result[key]) for key in ("top1", "top5", "mAP")}


@dataclass
class TrainSettings:
    """What the loop needs from ``TrainConfig`` (plain values, so tests can build it directly; no defaults:
    the values come from params.yaml, see ``lossbench.config.params.TrainConfig``)."""

    epochs: int
    ids_per_batch: int
    images_per_id: int
    lr: float
    weight_decay: float
    backbone_lr_mult: float
    warmup_epochs: int
    grad_clip: float
    patience: int
    monitor: str
    eval_batch_size: int
    seed: int

    @classmethod
    def from_config(cls, train_cfg: Any, seed: int) -> TrainSettings:
        names = cls.__dataclass_fields__.keys() - {"seed"}
        return cls(**{name: getattr(train_cfg, name) for name in names}, seed=seed)


@dataclass
class TrainResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_value: float
    epochs_trained: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self, monitor: str) -> dict[str, Any]:
        return {
            "monitor": monitor,
            "best_epoch": self.best_epoch + 1,
            f"best_{monitor}": self.best_value,
            "epochs_trained": self.epochs_trained,
            "stopped_early": self.stopped_early,
        }


def config_hash(obj: Any) -> str:
    """A stable hash of a JSON-able configuration, stored in resume files."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_optimizer(model: nn.Module, loss_fn: nn.Module, settings: TrainSettings) -> torch.optim.AdamW:
    """AdamW over the model's and the loss's parameter groups; the fused kernel (one call per step, on CPU and GPU):
    a head-only step on cached features spent as long in the per-tensor update as in the head's forward."""
    groups = model.param_groups(settings.lr, settings.lr * settings.backbone_lr_mult)
    groups += loss_fn.param_groups(settings.lr)
    groups = [g for g in groups if any(p.requires_grad for p in g["params"])]
    return torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay, fused=True)


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


class TrainStep(nn.Module):
    """A step's forward as one module (the unit DDP wraps, so loss-owned parameters are averaged too): the
    backbone on this rank's rows, their features gathered into the global batch (with gradients), the head and
    the loss on the whole of it (AMP on a GPU; the loss in float32). The head runs on the global batch so that
    its BatchNorm sees the batch one process would: the result equals one process's."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module, encoder: Encoder, device: torch.device):
        super().__init__()
        self.model, self.loss_fn, self.encoder, self.device = model, loss_fn, encoder, device

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, seed: tuple[int, ...]) -> torch.Tensor:
        with torch.autocast(self.device.type, enabled=self.device.type == "cuda"):
            with distributed.rank_stream(*seed):  # the backbone's dropout: this rank's own draws
                features = self.encoder.backbone_features(self.model, inputs)
            embeddings = self.model.embed_features(distributed.gather_with_grad(features))
        return self.loss_fn(embeddings.float(), labels)


EpochHook = Callable[[int, dict[str, float]], bool | None]
"""Called after every epoch with (epoch, its metrics); a true return stops training (it may also raise, e.g.
``optuna.TrialPruned``)."""


class Trainer:
    """Train ``model`` with ``loss_fn`` on P×K batches drawn from ``encoder`` rows labelled ``labels``.

    In a process group (torchrun) the batches are split over the ranks; ``logger`` and ``resume_file`` are
    written by rank 0 only (every rank reads the resume file). ``on_epoch`` (:data:`EpochHook`) runs after
    each epoch's bookkeeping, on every rank.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        encoder: Encoder,
        labels: np.ndarray,
        settings: TrainSettings,
        validation: ValidationSet | None = None,
        resume_file: str | Path | None = None,
        run_key: str = "",
        logger: EpochLogger | None = None,
        desc: str = "train",
        on_epoch: EpochHook | None = None,
    ):
        self.model, self.loss_fn, self.encoder = model, loss_fn, encoder
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.rank, self.main = distributed.rank(), distributed.is_main()
        self.settings, self.validation, self.desc, self.on_epoch = settings, validation, desc, on_epoch
        self.logger = logger if self.main else None
        self.resume_file = Path(resume_file) if resume_file else None
        self.run_key = run_key
        self.device = next(model.parameters()).device
        self.sampler = PKSampler(np.asarray(labels), settings.ids_per_batch, settings.images_per_id, seed=settings.seed)
        self.share = self.sampler.share(self.rank, distributed.world_size())
        self.step = distributed.data_parallel(TrainStep(model, loss_fn, encoder, self.device))
        self.optimizer = build_optimizer(model, loss_fn, settings)
        steps = len(self.sampler)
        self.scheduler = warmup_cosine(self.optimizer, settings.epochs * steps, settings.warmup_epochs * steps)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda")
        self.early = EarlyStopping(settings.patience)
        self.history: list[dict[str, float]] = []
        self.best_state = _state_copy(model)
        self.start_epoch = 0

    # ------------------------------------------------------------------------------------- resume
    def _resume_state(self, epoch: int) -> dict[str, Any]:
        return {
            "run_key": self.run_key,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "loss": self.loss_fn.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "early": self.early.state_dict(),
            "best_state": self.best_state,
            "history": self.history,
        }

    def try_resume(self) -> bool:
        """Continue from the resume file if it belongs to this exact run; return True if it did."""
        if not self.resume_file or not self.resume_file.is_file():
            return False
        state = torch.load(self.resume_file, map_location=self.device, weights_only=True)
        if state.get("run_key") != self.run_key:
            if self.main:
                print(f"ignoring {self.resume_file}: it belongs to another configuration")
            return False
        self.model.load_state_dict(state["model"])
        self.loss_fn.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.early.load_state_dict(state["early"])
        self.best_state = state["best_state"]
        self.history = list(state["history"])
        self.start_epoch = int(state["epoch"]) + 1
        if self.main:
            print(f"resuming from {self.resume_file} after epoch {self.start_epoch}")
        return True

    # --------------------------------------------------------------------------------------- loop
    def _epoch_seed(self, epoch: int) -> int:
        return self.settings.seed * 100_003 + epoch

    def train_epoch(self, epoch: int) -> float:
        """One epoch; returns the mean loss per sample (of the global batches: the same on every rank)."""
        torch.manual_seed(self._epoch_seed(epoch))
        self.sampler.set_epoch(epoch)
        view_rng = torch.Generator().manual_seed(self._epoch_seed(epoch))
        views = getattr(self.encoder, "views", 1)
        self.step.train()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        total, count = 0.0, 0
        bar = tqdm(
            self.sampler,
            desc=f"{self.desc} epoch {epoch + 1}/{self.settings.epochs}",
            unit="batch",
            leave=False,
            disable=None if self.main else True,
        )  # None: no bar when stderr is not a terminal (logs keep the per-epoch line)
        for step, batch in enumerate(bar):
            idx = np.asarray(batch)  # the global batch; views drawn for all of it, so they match one process's
            view = torch.randint(views, (len(idx),), generator=view_rng).numpy()
            with distributed.rank_stream(self._epoch_seed(epoch), step, 0):  # augmentation: this rank's own draws
                inputs = self.encoder.inputs(idx[self.share], view[self.share])
            labels = self.labels[idx].to(self.device)
            loss = self.step(inputs, labels, (self._epoch_seed(epoch), step, 1))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{self.desc}: loss became {loss.item()} at epoch {epoch + 1}; lower train.lr")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if self.settings.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(params, self.settings.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            total += loss.item() * len(idx)
            count += len(idx)
            bar.set_postfix(loss=f"{total / count:.4f}")
        return total / max(count, 1)

    def fit(self) -> TrainResult:
        if self.try_resume() and self.logger:
            for metrics in self.history:  # the log directory was recreated: replay the finished epochs
                self.logger.log_epoch(int(metrics["epoch"]) - 1, metrics)
        start = time.perf_counter()
        monitor = self.settings.monitor
        epoch = self.start_epoch - 1
        for epoch in range(self.start_epoch, self.settings.epochs):
            if self.early.should_stop:
                break
            metrics = {"epoch": epoch + 1, "train_loss": self.train_epoch(epoch)}
            metrics["lr"] = self.optimizer.param_groups[0]["lr"]
            if self.validation is not None:  # rank 0 validates; every rank decides early stopping on its numbers
                measured = self.validation.evaluate(self.model, self.settings.eval_batch_size) if self.main else None
                metrics.update(distributed.from_main(measured))
                value = metrics[monitor]
            else:
                value = float(epoch)  # no validation identities: keep the last epoch
            if self.early.update(value, epoch):
                self.best_state = _state_copy(self.model)
            self.history.append(metrics)
            if self.main:
                summary = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k not in ("epoch", "lr"))
                print(f"{self.desc} epoch {epoch + 1}/{self.settings.epochs}: {summary}")
            if self.resume_file and self.main:
                atomic_torch_save(self._resume_state(epoch), self.resume_file)
            if self.logger:
                self.logger.log_epoch(epoch, metrics)
            if self.on_epoch is not None and self.on_epoch(epoch, metrics):
                break
        if self.resume_file and self.main and self.resume_file.exists():
            self.resume_file.unlink()
        return TrainResult(
            best_state=self.best_state,
            best_epoch=self.early.best_epoch,
            best_value=self.early.best,
            epochs_trained=len(self.history),
            stopped_early=len(self.history) < self.settings.epochs,
            history=copy.deepcopy(self.history),
            seconds=time.perf_counter() - start,
        )
