"""Embedding extraction: every evaluated image embedded exactly once, streamed to memory-mapped ``.npy`` files.

Sets per loss (``data/embeddings/<loss>/<set>.npy`` + ``<set>_rows.npy`` holding manifest rows):
``query`` / ``gallery`` — the test split; ``challenge_query`` / ``challenge_gallery`` — the unlabelled
challenge test folders when the data has the challenge layout.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lossbench.data.transforms import build_eval_transform
from lossbench.errors import LossbenchError
from lossbench.io import atomic_memmap, atomic_save_npy
from lossbench.losses import LOSSES
from lossbench.models import EmbeddingModel
from lossbench.training.encoders import ImageEncoder, encode_all

SETS = {
    "query": ("test", "query"),
    "gallery": ("test", "gallery"),
    "challenge_query": ("challenge", "query"),
    "challenge_gallery": ("challenge", "gallery"),
}


def embedding_call(config: dict) -> str:
    """Which model method embeds images for this loss: the head's output, or raw features for ``baseline``."""
    return "forward" if LOSSES[config["type"]].needs_training else "backbone_features_normalised"


def output_dim(model: EmbeddingModel, call: str) -> int:
    return model.embed_dim if call == "forward" else model.backbone.num_features


def set_rows(manifest: pd.DataFrame) -> dict[str, np.ndarray]:
    """Manifest rows of each non-empty embedding set, in manifest order."""
    rows = {}
    for name, (split, role) in SETS.items():
        selected = manifest[(manifest["split"] == split) & (manifest["role"] == role)]["row"].to_numpy()
        if len(selected):
            rows[name] = selected
    if "query" not in rows or "gallery" not in rows:
        raise LossbenchError("the processed data has no test queries or no test gallery: raise data.test_ids "
                             "or check data.queries_per_id / data.query_domain, then `dvc repro preprocess`")
    return rows


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


def load_embeddings(directory: str | Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(embeddings, manifest rows)`` of one set written by :func:`extract_embeddings`."""
    directory = Path(directory)
    path = directory / f"{name}.npy"
    if not path.is_file():
        raise LossbenchError(f"{path} not found: run `dvc repro embed@{directory.name}` first")
    return np.load(path, mmap_mode="r"), np.load(directory / f"{name}_rows.npy")
