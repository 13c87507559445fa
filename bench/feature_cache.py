"""Frozen backbone: one training epoch on cached features vs with the backbone in the loop.

Both sides run the real ``lossbench.training.trainer.Trainer.train_epoch`` on the same P×K batches
(same labels, sampler seed and number of steps) with the headline loss of params.yaml:

- cached: ``FeatureEncoder`` over ``compute_features`` output (the head alone trains; what
  ``featurize`` + ``train@<loss>-<seed>`` do when ``model.freeze: true``);
- in the loop: ``ImageEncoder`` with the train transform, frozen backbone forward every step (what
  the source projects did);
- fine-tune: the same with the backbone unfrozen (``losses.<name>.model.freeze: false``): forward and
  backward through the backbone every step — the cost of fine-tuning.

A second table compares embedding a frozen run's test set from the cache (its head on cached features, what
``embed@<loss>`` does for each seed) with the full forward of every image.

Cases: the default backbone of params.yaml at ``data.image_size``, ``timm:resnet18`` at the same size
(a typical small CNN) and ``open_clip:ViT-B-32`` at 224 with a small batch. Also shows the one-off cost of the cache in epochs of in-loop training.

    python bench/feature_cache.py [--repeats 3] [--quick] [--steps N]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import interleaved, make_images, params, setup, table  # first: it configures the environment

from lossbench.data.sampler import PKSampler
from lossbench.data.split import split_sizes
from lossbench.features.cache import compute_features
from lossbench.features.encoders import FeatureEncoder, ImageEncoder
from lossbench.features.runs import transforms_for
from lossbench.losses import create_loss
from lossbench.models.builder import build_model
from lossbench.training.trainer import Trainer, TrainSettings


@dataclasses.dataclass
class Case:
    backbone: str
    input_size: int
    ids_per_batch: int
    images_per_id: int
    steps: int


def run_case(case: Case, p, storage: Path, repeats: int) -> list[object]:
    ids = case.ids_per_batch * case.steps
    labels = np.repeat(np.arange(ids), case.images_per_id)  # K images per identity: one pass = `steps` batches
    rows = np.arange(len(labels))
    images = make_images(storage, len(rows), p.data.image_size, p.seed)
    model_cfg = dataclasses.replace(p.model, backbone=case.backbone, freeze=True, input_size=case.input_size)
    model = build_model(model_cfg, p.data.image_size, p.seed, p.seed + 1, "mlp")
    train_tf, eval_tf = transforms_for(model, p.train)
    spec = p.resolve_loss(p.loss)
    settings = dataclasses.replace(
        TrainSettings.from_config(p.train, p.seed),
        epochs=repeats + 2,
        ids_per_batch=case.ids_per_batch,
        images_per_id=case.images_per_id,
    )

    start = time.perf_counter()
    cache = compute_features(
        model,
        images,
        rows,
        np.arange(0),
        train_tf,
        eval_tf,
        p.train.feature_views,
        p.train.eval_batch_size,
        p.seed,
        torch.device("cpu"),
    )
    featurize = time.perf_counter() - start

    def trainer(encoder) -> Trainer:
        own = copy.deepcopy(model)
        loss = create_loss(spec.type, num_classes=ids, embed_dim=model_cfg.embed_dim, **spec.options)
        return Trainer(own, loss, encoder, labels, settings, desc="bench")

    cached = trainer(FeatureEncoder(cache.train, torch.device("cpu")))
    in_loop = trainer(ImageEncoder(images, rows, train_tf, torch.device("cpu")))
    unfrozen = build_model(dataclasses.replace(model_cfg, freeze=False), p.data.image_size, p.seed, p.seed + 1, "mlp")
    fine_tune = Trainer(
        unfrozen,
        create_loss(spec.type, num_classes=ids, embed_dim=model_cfg.embed_dim, **spec.options),
        ImageEncoder(images, rows, train_tf, torch.device("cpu")),
        labels,
        settings,
        desc="bench",
    )
    assert len(cached.sampler) == len(in_loop.sampler) == len(fine_tune.sampler) == case.steps
    times = interleaved(
        {
            "in_loop": lambda: in_loop.train_epoch(0),
            "cached": lambda: cached.train_epoch(0),
            "fine_tune": lambda: fine_tune.train_epoch(0),
        },
        repeats=repeats,
    )
    batch = case.ids_per_batch * case.images_per_id
    return [
        case.backbone,
        case.input_size,
        batch,
        case.steps,
        1e3 * times["fine_tune"] / case.steps,
        1e3 * times["in_loop"] / case.steps,
        1e3 * times["cached"] / case.steps,
        f"{times['in_loop'] / times['cached']:.0f}×",
        f"{times['fine_tune'] / times['cached']:.0f}×",
        f"{featurize / times['in_loop']:.1f}",
    ]


def embed_case(p, storage: Path, repeats: int) -> list[object]:
    """A frozen run's test-set embedding: head on cached features vs the full forward of every image."""
    from lossbench.features.encoders import encode_all

    rows = np.arange(600)  # the default test split: 300 queries + 300 gallery
    images = make_images(storage, len(rows), p.data.image_size, p.seed + 1)
    model = build_model(p.model, p.data.image_size, p.seed, p.seed + 1, "mlp").eval()
    _, eval_tf = transforms_for(model, p.train)
    cache = compute_features(
        model, images, np.arange(0), rows, eval_tf, eval_tf, 1, p.evaluate.batch_size, p.seed, torch.device("cpu")
    )
    cpu = torch.device("cpu")
    from_cache = FeatureEncoder(cache.eval_features(rows), cpu)
    from_images = ImageEncoder(images, rows, eval_tf, cpu)
    gap = float(np.abs(encode_all(model, from_cache, 256) - encode_all(model, from_images, 256)).max())
    times = interleaved(
        {
            "cache": lambda: encode_all(model, from_cache, p.evaluate.batch_size),
            "images": lambda: encode_all(model, from_images, p.evaluate.batch_size),
        },
        repeats=repeats,
    )
    return [
        p.model.backbone,
        p.data.image_size,
        len(rows),
        1e3 * times["images"],
        1e3 * times["cache"],
        f"{times['images'] / times['cache']:.0f}×",
        f"{gap:.1e}",
    ]


def study_steps(p) -> int:
    """Steps in one epoch of the default study: the P×K sampler over its train split (``split_sizes``), so the
    per-epoch costs (seeding, the sampler, the progress bar) weigh as much per step as in a real run."""
    train_ids = split_sizes(p.synthetic.identities, p.data.val_ids, p.data.test_ids)["train"]
    labels = np.repeat(np.arange(train_ids), p.synthetic.images_per_id)
    return len(PKSampler(labels, p.train.ids_per_batch, p.train.images_per_id, seed=p.seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the default backbone only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: stable on a shared machine)")
    parser.add_argument("--steps", type=int, default=0, help="steps per epoch (0: as many as the default study's)")
    args = parser.parse_args()
    setup(threads=args.threads)
    p = params()
    steps = args.steps or study_steps(p)
    cases = [Case(p.model.backbone, p.data.image_size, p.train.ids_per_batch, p.train.images_per_id, steps)]
    if not args.quick:
        cases += [
            Case(spec, size, p_, k, n_steps)
            for spec, size, p_, k, n_steps in (
                ("timm:resnet18", p.data.image_size, p.train.ids_per_batch, p.train.images_per_id, steps),
                ("open_clip:ViT-B-32", 224, 4, 2, 2),
            )
            if spec != p.model.backbone
        ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            rows.append(run_case(case, p, Path(tmp), args.repeats))
    print(
        f"frozen-backbone training, {p.loss} loss, {p.train.feature_views} cached views, "
        f"torch threads {torch.get_num_threads()}, median of {args.repeats} interleaved epochs"
    )
    print(
        table(
            [
                "backbone",
                "input",
                "batch",
                "steps",
                "fine-tune ms/step",
                "frozen in-loop ms/step",
                "cached ms/step",
                "cache speed-up",
                "fine-tune / cached",
                "cache cost (in-loop epochs)",
            ],
            rows,
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        embed = embed_case(p, Path(tmp), args.repeats)
    print(f"\nembedding a frozen run's test set, median of {args.repeats} interleaved runs")
    print(
        table(
            ["backbone", "input", "images", "full forward ms", "from cache ms", "speed-up", "max |difference|"], [embed]
        )
    )


if __name__ == "__main__":
    main()
