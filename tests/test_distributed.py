"""Data-parallel training: 2 gloo processes on the CPU train exactly like one process on the same global batch.

Each worker sets the variables torchrun would set and joins the group through ``distributed.session``, the
path ``stages/run.py`` takes. Feature vectors and a small head keep it to seconds: either a frozen backbone
(cached features, the default runs) or a trained linear "backbone" in the loop, whose gradients pass back
through the gather (the fine-tuning path).

Two comparisons, because AdamW turns float noise into learning-rate-sized steps on a parameter whose true
gradient is zero — the bias in front of the head's BatchNorm, which the normalisation cancels (and, in front of
that, the linear backbone's bias): such a parameter follows its rounding errors, in one process as in two.
So whole runs (2 epochs of 2 steps, validation, early stopping, weights) are compared with the plain linear
head, and the first step's gradients (before AdamW) and BatchNorm statistics with the MLP head, whose BatchNorm
must see the global batch. Both heads use dropout 0.2: the ranks draw it alike, as one process does.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from loss_options import full_options  # tests/loss_options.py
from torch import nn
from train_settings import train_settings  # tests/train_settings.py

from lossbench.features.encoders import FeatureEncoder
from lossbench.losses import create_loss
from lossbench.models import EmbeddingModel, ProjectionHead
from lossbench.models.backbones import Backbone
from lossbench.training import distributed
from lossbench.training.trainer import Trainer, ValidationSet

WORLD = 2
DIM, IDS, PER_ID = 12, 8, 4
CASES = [f"{loss}-{backbone}" for loss in ("arcface", "supcon") for backbone in ("frozen", "trained")]
RESUMED = "arcface-trained"
LINEAR, MLP = 0, 16  # head hidden width: 0 = Dropout → Linear; 16 = Linear → BatchNorm → GELU → Dropout → Linear
TIMEOUT = timedelta(seconds=120)  # guards against a hang only: a failing rank never leaves the other waiting forever


class BackboneInputs(FeatureEncoder):
    """The vectors are the backbone's inputs, not its cached outputs: the backbone runs in the loop."""

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return model(inputs)

    def backbone_features(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return model.features(inputs)


def make_trainer(case: str, hidden: int, **kwargs) -> Trainer:
    """The same model, loss, data and settings in every process (world size 1 or 2); ``case``: loss-backbone."""
    loss_name, backbone_mode = case.split("-")
    frozen = backbone_mode == "frozen"
    rng = np.random.default_rng(0)
    train = rng.normal(size=(2, IDS * PER_ID, DIM)).astype(np.float32)  # 2 views
    val = rng.normal(size=(16, DIM)).astype(np.float32)
    torch.manual_seed(0)
    body = nn.Identity() if frozen else nn.Linear(DIM, DIM)
    backbone = Backbone(body, DIM, mean=(0.5,) * 3, std=(0.5,) * 3, input_size=16, spec="test")
    model = EmbeddingModel(backbone, ProjectionHead(DIM, 8, hidden=hidden, dropout=0.2), freeze=frozen)
    torch.manual_seed(1)
    options = full_options(loss_name, **({"scale": 16.0} if loss_name == "arcface" else {}))
    loss_fn = create_loss(loss_name, num_classes=IDS, embed_dim=8, **options)
    encoder = FeatureEncoder if frozen else BackboneInputs
    cpu = torch.device("cpu")
    validation = ValidationSet(encoder(val, cpu), np.repeat(np.arange(4), 4), np.tile([True, False], 8))
    labels = np.repeat(np.arange(IDS), PER_ID)
    settings = train_settings(epochs=2, patience=5, eval_batch_size=64)  # P=4 × K=4 of 8 identities: 2 steps an epoch
    return Trainer(model, loss_fn, encoder(train, cpu), labels, settings, validation=validation, **kwargs)


class Recorder:
    def __init__(self):
        self.epochs: list[int] = []

    def log_epoch(self, epoch: int, metrics: dict) -> None:
        self.epochs.append(epoch)


class InterruptAfter:
    def log_epoch(self, epoch: int, metrics: dict) -> None:
        raise KeyboardInterrupt


def run_outcome(trainer: Trainer) -> dict:
    result = trainer.fit()
    return {
        "history": result.history,
        "best_state": result.best_state,
        "model": {k: v.clone() for k, v in trainer.model.state_dict().items()},
        "loss": {k: v.clone() for k, v in trainer.loss_fn.state_dict().items()},
        "start_epoch": trainer.start_epoch,
    }


class Recorded(Exception):
    """Stops an epoch once the first step's gradients are recorded."""


def first_step(trainer: Trainer) -> dict:
    """The loss and the gradients of every trained parameter at the first optimizer step, and the BatchNorm
    statistics it leaves."""
    named = {f"model.{k}": p for k, p in trainer.model.named_parameters()}
    named |= {f"loss.{k}": p for k, p in trainer.loss_fn.named_parameters()}
    grads: dict[str, torch.Tensor] = {}

    def record(optimizer, args, kwargs) -> None:
        if not grads:
            grads.update({k: p.grad.clone() for k, p in named.items() if p.grad is not None})
            raise Recorded

    trainer.optimizer.register_step_pre_hook(record)
    with pytest.raises(Recorded):
        trainer.train_epoch(0)
    buffers = {k: v.clone() for k, v in trainer.model.state_dict().items() if "running" in k}
    return {"grads": grads, "buffers": buffers}


def worker(rank: int, port: int, out: Path, resume_file: Path) -> None:
    os.environ.update(
        WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    with distributed.session(timeout=TIMEOUT) as joined:
        assert joined == rank and distributed.world_size() == WORLD
        results = {}
        for case in CASES:
            recorder = Recorder()
            results[case] = {**run_outcome(make_trainer(case, LINEAR, logger=recorder)), "logged": recorder.epochs}
            results[f"{case}-step"] = first_step(make_trainer(case, MLP))
        results["resumed"] = run_outcome(make_trainer(RESUMED, LINEAR, resume_file=resume_file, run_key="k"))
    torch.save(results, out / f"rank{rank}.pt")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ranks(tmp_path: Path, resume_file: Path) -> list[dict]:
    context = mp.spawn(worker, args=(free_port(), tmp_path, resume_file), nprocs=WORLD, join=False)
    deadline = time.monotonic() + TIMEOUT.total_seconds()
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {WORLD} training processes did not finish within {TIMEOUT}")
    return [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD)]


def assert_close_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5, msg=key)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[dict, list[dict], Path]:
    """The single-process references, what each of the 2 ranks trained, and the resume file they resumed from."""
    tmp_path = tmp_path_factory.mktemp("distributed")
    single = {case: run_outcome(make_trainer(case, LINEAR)) for case in CASES}
    single |= {f"{case}-step": first_step(make_trainer(case, MLP)) for case in CASES}
    resume_file = tmp_path / "last.pt"  # one process trains epoch 1 and is interrupted; the 2 ranks resume
    with pytest.raises(KeyboardInterrupt):
        make_trainer(RESUMED, LINEAR, resume_file=resume_file, run_key="k", logger=InterruptAfter()).fit()
    assert resume_file.is_file()
    return single, run_ranks(tmp_path, resume_file), resume_file


@pytest.mark.parametrize("case", CASES)
def test_two_ranks_train_like_one_process_on_the_global_batch(runs, case):
    single, ranks, _ = runs
    reference, rank0 = single[case], ranks[0][case]
    assert len(rank0["history"]) == len(reference["history"]) == 2
    for mine, theirs in zip(rank0["history"], reference["history"]):
        assert mine.keys() == theirs.keys()
        for key in mine:
            assert mine[key] == pytest.approx(theirs[key], abs=1e-5), key
    assert_close_states(rank0["model"], reference["model"])
    assert_close_states(rank0["best_state"], reference["best_state"])
    assert_close_states(rank0["loss"], reference["loss"])  # arcface: the class weights, trained on both ranks
    trained = [key for key in reference["model"] if key.startswith("backbone.")]
    assert bool(trained) == case.endswith("trained")
    initial = make_trainer(case, LINEAR).model.state_dict()
    assert all(not torch.equal(reference["model"][key], initial[key]) for key in trained)


@pytest.mark.parametrize("case", CASES)
def test_two_ranks_give_the_gradients_of_one_process(runs, case):
    single, ranks, _ = runs
    reference = single[f"{case}-step"]
    assert any(key.startswith("model.backbone.") for key in reference["grads"]) == case.endswith("trained")
    assert any("head.net.1" in key for key in reference["grads"])  # the head's BatchNorm
    for rank in ranks:
        assert_close_states(rank[f"{case}-step"]["grads"], reference["grads"])  # gradient scaling is right
        assert_close_states(rank[f"{case}-step"]["buffers"], reference["buffers"])  # BatchNorm saw the global batch


@pytest.mark.parametrize("case", CASES)
def test_ranks_stay_identical_and_only_rank_0_logs(runs, case):
    _, ranks, _ = runs
    rank0, rank1 = ranks[0][case], ranks[1][case]
    assert rank0["history"] == rank1["history"]  # rank 0's validation, received by rank 1: the same early stopping
    for key in ("model", "loss"):
        assert all(torch.equal(rank0[key][k], rank1[key][k]) for k in rank0[key])
    assert rank0["logged"] == [0, 1] and rank1["logged"] == []


def test_ranks_resume_a_one_process_run_and_finish_it_alike(runs):
    single, ranks, resume_file = runs
    for rank in ranks:
        resumed = rank["resumed"]
        assert resumed["start_epoch"] == 1
        assert resumed["history"][1]["train_loss"] == pytest.approx(single[RESUMED]["history"][1]["train_loss"])
        assert_close_states(resumed["model"], single[RESUMED]["model"])
    assert not resume_file.exists()  # rank 0 removed the resume file when training completed


def test_one_process_is_not_distributed(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not distributed.launched_by_torchrun()
    with distributed.session() as rank:
        assert rank == 0 and distributed.world_size() == 1 and not torch.distributed.is_initialized()
    x = torch.ones(3, requires_grad=True)
    assert distributed.gather_with_grad(x) is x
    module = nn.Linear(2, 2)
    assert distributed.data_parallel(module) is module
