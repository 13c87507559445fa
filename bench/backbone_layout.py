"""Backbone feature throughput by memory layout and batch size: what ``featurize`` (and a fine-tuned run) pays.

The default backbone of params.yaml at ``data.image_size``, backbone only (``model.features``, as the feature
cache calls it) under ``inference_mode`` on normalised inputs already in memory, for NCHW (contiguous) and
channels_last weights + inputs, at several batch sizes. Every case processes the same images; cases alternate
round by round. Reported: images/s of both layouts per batch size, their ratio, and the largest difference
between the layouts' features (different kernels: equal up to float rounding).

    python bench/backbone_layout.py [--images 256] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy

import torch
from _common import interleaved, params, setup, table  # first: it configures the environment

from lossbench.models.builder import build_model

BATCHES = (16, 32, 64, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256, help="images per timed pass (a multiple of 256)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2: what the study uses here)")
    args = parser.parse_args()
    setup(threads=args.threads)
    p = params()
    size = p.data.image_size
    contiguous = build_model(p.model, size, p.seed, p.seed + 1, "normalise").eval()
    channels_last = copy.deepcopy(contiguous).to(memory_format=torch.channels_last)
    images = torch.randn(args.images, 3, size, size, generator=torch.Generator().manual_seed(p.seed))
    layouts = {"NCHW": (contiguous, torch.contiguous_format), "channels_last": (channels_last, torch.channels_last)}

    def case(model: torch.nn.Module, layout: torch.memory_format, batch: int):
        @torch.inference_mode()
        def run() -> None:
            for start in range(0, len(images), batch):
                model.features(images[start : start + batch].contiguous(memory_format=layout))

        return run

    cases = {(name, batch): case(*layouts[name], batch) for name in layouts for batch in BATCHES}
    times = interleaved(cases, repeats=args.repeats)
    with torch.inference_mode():
        sample = images[:16]
        gap = contiguous.features(sample) - channels_last.features(sample.contiguous(memory_format=torch.channels_last))
    print(
        f"{p.model.backbone} features at {size} px, torch threads {torch.get_num_threads()}, median of "
        f"{args.repeats} passes over {args.images} images; largest |NCHW - channels_last| = {gap.abs().max():.2e}; "
        f"train.eval_batch_size (featurize's batch) = {p.train.eval_batch_size}"
    )
    fastest = min(times.values())
    print(
        table(
            ["batch", "NCHW img/s", "channels_last img/s", "channels_last / NCHW", "vs the fastest case"],
            [
                [
                    batch,
                    args.images / times[("NCHW", batch)],
                    args.images / times[("channels_last", batch)],
                    f"{times[('NCHW', batch)] / times[('channels_last', batch)]:.2f}×",
                    f"{fastest / min(times[('NCHW', batch)], times[('channels_last', batch)]):.2f}",
                ]
                for batch in BATCHES
            ],
        )
    )


if __name__ == "__main__":
    main()
