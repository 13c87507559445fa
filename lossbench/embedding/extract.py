"""Embedding extraction: every evaluated image embedded exactly once, streamed to memory-mapped ``.npy`` files
(the sets and their file layout: :mod:`lossbench.embedding.sets`).

A run on a frozen backbone embeds from the feature cache (its head applied to cached features, equal to the
full forward within float tolerance) unless flip TTA is asked for; every other run runs its model on images.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from lossbench.config.params import Params
from lossbench.core import paths
from lossbench.core.io import atomic_memmap, atomic_save_npy
from lossbench.core.runtime import pick_device
from lossbench.embedding.sets import set_rows
from lossbench.features.encoders import Encoder, encode_all
from lossbench.features.runs import Splits, eval_encoder, shared_cache
from lossbench.models import EmbeddingModel, HeadModel
from lossbench.models.checkpoint import load_head, load_model


def extract_embeddings(
    model: EmbeddingModel | HeadModel,
    encoders: dict[str, Encoder],
    rows: dict[str, np.ndarray],
    out_dir,
    batch_size: int,
    flip_tta: bool,
) -> dict[str, dict]:
    """Embed every set into ``out_dir`` (``<set>.npy`` + ``<set>_rows.npy``); return per-set counts and speed."""
    report = {}
    for name, encoder in encoders.items():
        start = time.perf_counter()
        with atomic_memmap(out_dir / f"{name}.npy", (len(encoder), model.embed_dim)) as out:
            encode_all(model, encoder, batch_size, out=out, flip_tta=flip_tta, progress=f"embed {name}")
        seconds = time.perf_counter() - start
        atomic_save_npy(out_dir / f"{name}_rows.npy", rows[name])
        report[name] = {"images": int(len(encoder)), "images_per_second": round(len(encoder) / max(seconds, 1e-9), 1)}
    return report


def embed_run(params: Params, loss: str, seed: int) -> str:
    """Write the query/gallery (and challenge) embeddings of one run; return a summary line."""
    spec = params.resolve_loss(loss)
    device = pick_device()
    splits = Splits.load()
    cache = None if params.evaluate.flip_tta else shared_cache(params, spec, seed)
    load = load_head if cache is not None else load_model  # cached features need the head only
    model, _ = load(paths.model_dir(loss, seed), device)
    rows = set_rows(splits.manifest)
    encoders = {name: eval_encoder(model, splits.images, set_rows_, cache, device) for name, set_rows_ in rows.items()}
    with torch.no_grad():
        report = extract_embeddings(
            model,
            encoders,
            rows,
            paths.embeddings_dir(loss, seed),
            params.evaluate.batch_size,
            params.evaluate.flip_tta,
        )
    source = "cached features" if cache is not None else "images"
    return f"{loss} seed {seed} (from {source}): " + ", ".join(f"{name} {r['images']}" for name, r in report.items())
