"""Embedding extraction: every evaluated image embedded exactly once, streamed to memory-mapped ``.npy`` files
(the sets and their file layout: :mod:`lossbench.embedding_sets`)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lossbench.data.transforms import build_eval_transform
from lossbench.embedding_sets import set_rows
from lossbench.io import atomic_memmap, atomic_save_npy
from lossbench.losses import loss_trains
from lossbench.models import EmbeddingModel
from lossbench.training.encoders import ImageEncoder, encode_all


def embedding_call(config: dict) -> str:
    """Which model method embeds images for this loss: the head's output, or raw features for ``baseline``."""
    return "forward" if loss_trains(config["type"]) else "backbone_features_normalised"


def output_dim(model: EmbeddingModel, call: str) -> int:
    return model.embed_dim if call == "forward" else model.backbone.num_features


def extract_embeddings(model: EmbeddingModel, config: dict, images: np.ndarray, manifest: pd.DataFrame,
                       out_dir: str | Path, batch_size: int, flip_tta: bool,
                       device: torch.device) -> dict[str, dict]:
    """Embed every set into ``out_dir``; return per-set counts and throughput."""
    out_dir = Path(out_dir)
    call = embedding_call(config)
    backbone = model.backbone
    transform = build_eval_transform(backbone.input_size, backbone.mean, backbone.std)
    report = {}
    for name, rows in set_rows(manifest).items():
        encoder = ImageEncoder(images, rows, transform, device, call=call)
        start = time.perf_counter()
        with atomic_memmap(out_dir / f"{name}.npy", (len(rows), output_dim(model, call))) as out:
            encode_all(model, encoder, batch_size, out=out, flip_tta=flip_tta, progress=f"embed {name}")
        seconds = time.perf_counter() - start
        atomic_save_npy(out_dir / f"{name}_rows.npy", rows)
        report[name] = {"images": int(len(rows)), "images_per_second": round(len(rows) / max(seconds, 1e-9), 1)}
    return report
