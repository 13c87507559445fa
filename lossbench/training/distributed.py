"""Data-parallel training under ``torchrun``: the process group, the gradient-carrying gather, rank-0 helpers.

``torchrun --nproc_per_node=N`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in every process; with N > 1,
:func:`session` joins the process group (gloo on the CPU, nccl with one GPU per local rank). Without it (no
torchrun, or N = 1) no group exists and every helper here is the identity or answers "rank 0 of 1", so a single
process trains exactly as it always did.

The rule the trainer follows on N ranks (``TrainStep``): every rank runs the backbone on its own share of the
global P×K batch, the shares' features are gathered (with gradients), and every rank computes the head and the
loss on the whole global batch. So every loss — in-batch (triplet, contrastive, clip, supcon) or classification
(arcface, cosface, center_ce) — sees exactly the batch one process would, and so does the head's BatchNorm.
Every rank draws the head's dropout from the same random stream, so every rank's loss L is the same (its share's
augmentation and backbone draw from its own, ``rank_stream``). Gradients: as L is the same everywhere, so the gather's backward sums the ranks' gradients of each slot
(N · ∂L/∂fᵣ for rank r's rows) and DDP's average over the ranks turns the backbone's N-fold gradients back into
∂L/∂θ; the head and the loss-owned parameters get ∂L/∂W on every rank, averaged to ∂L/∂W. The result equals one
process on the global batch (``tests/test_distributed.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
"""What torchrun sets in each process it starts (with ``MASTER_ADDR`` / ``MASTER_PORT`` for the rendezvous)."""


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by torchrun (``WORLD_SIZE`` > 1)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES) and int(os.environ["WORLD_SIZE"]) > 1


def backend() -> str:
    """nccl when the ranks train on GPUs, gloo on the CPU."""
    return "nccl" if torch.cuda.is_available() else "gloo"


@contextmanager
def session(timeout: timedelta | None = None) -> Iterator[int]:
    """Join torchrun's process group for the block and yield this process's rank (0 without torchrun).

    On a GPU machine each process takes the GPU of its ``LOCAL_RANK`` (``torch.device("cuda")`` then means
    that GPU). The group is left when the block ends.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        yield rank()
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    # env://: the rendezvous address, rank and world size come from torchrun's variables
    dist.init_process_group(backend(), timeout=timeout)
    try:
        yield dist.get_rank()
    finally:
        dist.destroy_process_group()


def world_size() -> int:
    """Processes training together (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes the outputs (checkpoints, resume files, curves, metrics): rank 0."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in one process)."""
    if world_size() > 1:
        dist.barrier()


def from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a picklable object; the others may pass None)."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def rank_stream(*keys: int) -> Iterator[None]:
    """Inside the block torch draws from this rank's own random stream, seeded by (``keys``, rank); after it the
    shared stream continues where it was. For the work on a rank's share (augmentation, the backbone's dropout):
    the ranks' draws are independent, while the head and the loss on the global batch draw alike on every rank.
    One process: no change at all."""
    if world_size() == 1:
        yield
        return
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(np.random.SeedSequence([*keys, rank()]).generate_state(1)[0]))
        yield


class _GatherWithGrad(torch.autograd.Function):
    """All ranks' tensors concatenated in rank order; backward: the gradient of this rank's rows, summed over
    the ranks (every rank's loss depends on every rank's rows)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # an all-reduce (not all-to-all or reduce-scatter): every backend has it
        return grad.chunk(dist.get_world_size())[dist.get_rank()]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` (same shape on every rank) stacked along dim 0 in rank order, differentiable."""
    return tensor if world_size() == 1 else _GatherWithGrad.apply(tensor)


def data_parallel(module: nn.Module) -> nn.Module:
    """``module`` under DistributedDataParallel when several ranks train (gradients averaged over the ranks).

    Buffers are synchronised once, not before every step: the head's BatchNorm statistics are the same on every
    rank (it sees the global batch), only a fine-tuned CNN backbone's differ, and rank 0's — the ones it
    validates and saves — evolve the same either way, without a frozen backbone's buffers sent every step.
    """
    if world_size() == 1:
        return module
    device = next(module.parameters()).device
    device_ids = [device] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, forward_sync_buffers=False)
