"""Data-parallel training throughput: samples/s of 1 and of N processes on the same global P×K batch.

Every case starts its processes as torchrun does (its variables, then ``lossbench.training.distributed.session``):
on a GPU machine one GPU per process (nccl, AMP, channels_last), else on the CPU (gloo), each process with
``--threads`` torch threads. Each process runs the real ``Trainer``: a one-step warm-up, then a timed epoch of
``--steps`` steps of the global batch (``train.ids_per_batch`` × ``train.images_per_id``; N processes embed
1/N of it each) fine-tuning the backbone on random images — the job that needs several GPUs. Samples/s = steps ×
global batch / the time of the slowest rank; the cases alternate order round by round and medians are reported.

    python bench/distributed.py --nproc 4 --steps 20                    # a 4-GPU machine
    python bench/distributed.py --nproc 4 --backbone open_clip:ViT-B-32 --input-size 224
    python bench/distributed.py --nproc 2 --steps 5                     # CPU smoke test (gloo, 2 processes)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp
from _common import make_images, params, setup, table  # first: it configures the environment

from lossbench.core.runtime import pick_device, to_device
from lossbench.features.encoders import ImageEncoder
from lossbench.features.runs import transforms_for
from lossbench.losses import create_loss
from lossbench.models.builder import build_model
from lossbench.training import distributed
from lossbench.training.trainer import Trainer, TrainSettings


def worker(rank: int, nproc: int, port: int, images_path: Path, out: Path, args: argparse.Namespace) -> None:
    """One rank: train a warm-up step, then time one epoch of ``args.steps`` global batches; rank 0 writes it."""
    os.environ.update(
        WORLD_SIZE=str(nproc), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    setup(threads=args.threads)
    p = params()
    with distributed.session():
        device = pick_device()
        spec = p.resolve_loss(p.loss)
        same_backbone = args.backbone == spec.model.backbone  # another backbone: random weights (same timings)
        model_cfg = dataclasses.replace(
            spec.model,
            backbone=args.backbone,
            pretrained=spec.model.pretrained if same_backbone else None,
            input_size=args.input_size,
            freeze=False,
        )
        model = to_device(build_model(model_cfg, p.data.image_size, p.seed, p.seed + 1, "mlp"), device)
        train_tf, _ = transforms_for(model, p.train)
        images = np.load(images_path, mmap_mode="r")
        encoder = ImageEncoder(images, np.arange(len(images)), train_tf, device)
        per_batch = args.ids_per_batch * args.images_per_id
        labels = np.repeat(np.arange(len(images) // args.images_per_id), args.images_per_id)
        settings = dataclasses.replace(
            TrainSettings.from_config(p.train, p.seed),
            epochs=1,
            ids_per_batch=args.ids_per_batch,
            images_per_id=args.images_per_id,
        )
        loss = create_loss(spec.type, num_classes=int(labels.max()) + 1, embed_dim=model_cfg.embed_dim, **spec.options)
        loss = loss.to(device)
        warmup = Trainer(model, loss, encoder, labels[:per_batch], settings, desc="warm-up")  # one step
        warmup.train_epoch(0)
        trainer = Trainer(model, loss, encoder, labels, settings, desc="bench")
        assert len(trainer.sampler) == args.steps
        distributed.barrier()
        start = time.perf_counter()
        train_loss = trainer.train_epoch(0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        distributed.barrier()
        seconds = time.perf_counter() - start
        if distributed.is_main():
            (out / f"{nproc}.txt").write_text(f"{seconds} {train_loss} {device}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_case(nproc: int, images_path: Path, out: Path, args: argparse.Namespace) -> tuple[float, str]:
    """Seconds of the timed epoch with ``nproc`` processes, and the device rank 0 trained on."""
    mp.spawn(worker, args=(nproc, free_port(), images_path, out, args), nprocs=nproc, join=True)
    seconds, _, device = (out / f"{nproc}.txt").read_text().split()
    return float(seconds), device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p = params()
    gpus = torch.cuda.device_count()
    parser.add_argument("--nproc", type=int, default=gpus if gpus > 1 else 2, help="processes of the parallel case")
    parser.add_argument("--steps", type=int, default=10, help="global batches in the timed epoch")
    parser.add_argument("--rounds", type=int, default=2, help="timed runs of each case (medians)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--backbone", default=p.model.backbone)
    parser.add_argument("--input-size", type=int, default=p.model.input_size or p.data.image_size)
    parser.add_argument("--ids-per-batch", type=int, default=p.train.ids_per_batch)
    parser.add_argument("--images-per-id", type=int, default=p.train.images_per_id)
    args = parser.parse_args()
    if gpus and args.nproc > gpus:
        parser.error(f"--nproc {args.nproc} but this machine has {gpus} GPUs (one process per GPU)")
    if args.ids_per_batch % args.nproc:
        parser.error(f"--ids-per-batch {args.ids_per_batch} must be a multiple of --nproc {args.nproc}")
    batch = args.ids_per_batch * args.images_per_id
    cases = [1, args.nproc]
    seconds: dict[int, list[float]] = {n: [] for n in cases}
    with tempfile.TemporaryDirectory() as tmp:
        images_path = Path(make_images(Path(tmp), batch * args.steps, p.data.image_size, p.seed).filename)
        for round_ in range(args.rounds):
            for n in cases if round_ % 2 == 0 else reversed(cases):
                elapsed, device = run_case(n, images_path, Path(tmp), args)
                seconds[n].append(elapsed)
    rows = []
    for n in cases:
        rate = args.steps * batch / statistics.median(seconds[n])
        single = args.steps * batch / statistics.median(seconds[1])
        rows.append([n, batch, batch // n, rate, f"{rate / single:.2f}×", f"{rate / single / n:.0%}"])
    print(
        f"data-parallel fine-tuning of {args.backbone} at {args.input_size} px ({p.loss} loss), {args.steps} steps of "
        f"the global batch, {device.split(':')[0]} ({distributed.backend()}), {args.threads} torch thread(s) per "
        f"process, median of {args.rounds} rounds"
    )
    print(
        table(
            ["processes", "global batch", "batch per process", "samples/s", "speed-up vs 1", "efficiency"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
