"""Embed path throughput vs the raw model forward, same batch size and threads.

- embed path: ``encode_all`` over an ``ImageEncoder`` with the eval transform on a uint8 memmap,
  writing into an ``.npy`` memmap (what ``lossbench.embedding.extract_embeddings`` does);
- raw: ``model(x)`` under ``no_grad`` on normalised tensors already in memory.

Cases: the default backbone of params.yaml at ``data.image_size`` (stored size = input size, no
resize) and the same backbone fed at 1.5× that size (the resize path). Goal: ratio ≥ 0.85. The last
column times the input preparation of one batch alone: ``ImageEncoder.inputs`` (batched eval
transform) vs the transform applied per image and stacked.

    python bench/embed_throughput.py [--images 1024] [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import interleaved, params, setup, table  # first: it configures the environment

from lossbench.features.encoders import ImageEncoder, encode_all
from lossbench.features.runs import transforms_for
from lossbench.models.builder import build_model


def run_case(p, input_size: int, count: int, batch: int, storage: Path, repeats: int) -> list[object]:
    size = p.data.image_size
    rng = np.random.default_rng(p.seed)
    images = np.lib.format.open_memmap(storage / "images.npy", mode="w+", dtype=np.uint8, shape=(count, size, size, 3))
    images[:] = rng.integers(0, 256, size=images.shape, dtype=np.uint8)
    images.flush()
    images = np.load(storage / "images.npy", mmap_mode="r")
    model = build_model(dataclasses.replace(p.model, input_size=input_size), size, p.seed, p.seed + 1, "mlp").eval()
    _, eval_tf = transforms_for(model, p.train)
    # one timed unit = one batch; each side cycles through the same batches, so a round compares like with like
    encoders = [
        ImageEncoder(images, np.arange(s, min(s + batch, count)), eval_tf, torch.device("cpu"))
        for s in range(0, count, batch)
    ]
    in_memory = itertools.cycle([torch.stack([eval_tf(images[i]) for i in encoder.rows]) for encoder in encoders])
    out = np.lib.format.open_memmap(storage / "out.npy", mode="w+", dtype=np.float32, shape=(count, model.embed_dim))
    to_embed = itertools.cycle([(encoder, out[encoder.rows[0] : encoder.rows[-1] + 1]) for encoder in encoders])

    @torch.no_grad()
    def raw() -> None:
        model(next(in_memory))

    def embed() -> None:
        encoder, target = next(to_embed)
        encode_all(model, encoder, batch, out=target)

    times = interleaved({"raw": raw, "embed": embed}, repeats=repeats * len(encoders))
    per_image = {side: times[side] / batch for side in ("raw", "embed")}
    encoder = encoders[0]
    rows = np.arange(min(batch, count))
    prep = interleaved(
        {"per_image": lambda: torch.stack([eval_tf(images[i]) for i in rows]), "batched": lambda: encoder.inputs(rows)},
        repeats=repeats,
    )
    return [
        p.model.backbone,
        f"{size}→{input_size}",
        batch,
        1 / per_image["raw"],
        1 / per_image["embed"],
        times["raw"] / times["embed"],
        f"{prep['per_image'] / prep['batched']:.1f}×",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1024, help="a multiple of evaluate.batch_size")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable on a shared machine)")
    args = parser.parse_args()
    setup(threads=args.threads)
    p = params()
    batch = p.evaluate.batch_size
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for input_size in (p.data.image_size, 3 * p.data.image_size // 2):
            rows.append(run_case(p, input_size, args.images, batch, Path(tmp), args.repeats))
    print(
        f"embed throughput, torch threads {torch.get_num_threads()}, median over {args.repeats} passes of "
        f"{args.images} images, the two sides alternating batch by batch"
    )
    print(
        table(
            [
                "backbone",
                "stored→input",
                "batch",
                "raw img/s",
                "embed img/s",
                "embed / raw",
                "input prep: batched vs per-image",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
