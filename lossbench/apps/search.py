"""Search the test gallery with image files, using a loss's saved model and FAISS index.

A query file goes through exactly what a gallery image went through: preprocess's decode and resize
(:func:`open_rgb`, :func:`resize_center_crop` to the stored image size), then embed's eval transform,
model call and optional flip TTA (:class:`ImageEncoder`, :func:`encode_all`). Results are gallery rows
of the saved index (``data/index/<loss>/seed<seed>/index.faiss``), mapped to the manifest through ``gallery_rows.npy``.

A query's identity is known when its file lies in an identity folder of the data root
(``<root>/<identity>/…``, or ``<root>/train/<identity>/…`` in the challenge layout); the grid then frames
results green (same identity) or red. If any query's identity is unknown (a file from elsewhere), the grid
makes no judgement at all: every result gets a neutral grey frame.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lossbench.core import paths
from lossbench.core.errors import LossbenchError
from lossbench.core.runtime import pick_device
from lossbench.data.preprocess import resize_center_crop
from lossbench.data.scan import CHALLENGE, UnusableImage, detect_layout, open_rgb
from lossbench.data.store import IMAGES_FILE, MANIFEST_FILE, load_processed
from lossbench.data.transforms import build_eval_transform
from lossbench.embedding.sets import load_embeddings
from lossbench.features.encoders import ImageEncoder, encode_all
from lossbench.index.faiss_index import load_index, search
from lossbench.models import EmbeddingModel
from lossbench.models.checkpoint import CONFIG, load_model

NEUTRAL_COLOR = (150, 150, 150)
"""Frame colour of every result in the grid when the query's identity is unknown."""


@dataclass(frozen=True)
class Match:
    """One gallery item found for a query."""

    rank: int
    row: int  # manifest row (index into images.npy)
    path: str
    identity: str
    score: float


@dataclass(frozen=True)
class QueryResult:
    """A query image, its identity when known, its matches (best first) and its resized pixels."""

    image: str
    identity: str | None
    matches: list[Match]
    pixels: np.ndarray


def pipeline_outputs(loss: str, seed: int) -> list[Path]:
    """What search reads for a run: processed data, model, gallery rows and the FAISS index."""
    return [
        paths.PROCESSED / IMAGES_FILE,
        paths.PROCESSED / MANIFEST_FILE,
        paths.model_dir(loss, seed) / CONFIG,
        paths.embeddings_dir(loss, seed) / "gallery_rows.npy",
        paths.index_file(loss, seed),
    ]


def check_pipeline(loss: str, seed: int) -> None:
    """Fail with the command to run when an output of the pipeline that search reads is missing."""
    missing = [str(p) for p in pipeline_outputs(loss, seed) if not p.is_file()]
    if missing:
        raise LossbenchError(
            f"the pipeline has not produced {', '.join(missing)} yet: run "
            f"`dvc repro index@{loss}` (or `dvc repro`) in the project root first"
        )


def load_query_image(path: str | os.PathLike, size: int, max_pixels: int) -> np.ndarray:
    """``path`` decoded and resized like preprocess does (RGB uint8 ``size×size×3``; at most ``max_pixels``)."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise LossbenchError(f"query image {path} {what}: give the path of an image file")
    try:
        return resize_center_crop(open_rgb(path, max_pixels), size)
    except UnusableImage as exc:
        raise LossbenchError(
            f"query image {path} is not a readable image ({exc.reason}: {exc.detail}): give a JPEG, PNG or "
            "another format Pillow reads"
        ) from None


def query_identity(path: str | os.PathLike, root: str | os.PathLike) -> str | None:
    """The identity folder ``path`` lies in below data root ``root``, or ``None`` if it is outside one."""
    root = Path(root)
    if not root.is_dir():
        return None
    try:
        parts = Path(path).resolve().relative_to(root.resolve()).parts
    except ValueError:
        return None
    if detect_layout(root) == CHALLENGE:
        parts = parts[1:] if parts[:1] == ("train",) else ()
    return parts[0] if len(parts) >= 2 else None


def embed_images(model: EmbeddingModel, images: np.ndarray, batch_size: int, flip_tta: bool) -> np.ndarray:
    """Embeddings of uint8 images with the eval transform and model call the embed stage uses."""
    backbone = model.backbone
    transform = build_eval_transform(backbone.input_size, backbone.mean, backbone.std)
    device = next(model.parameters()).device
    encoder = ImageEncoder(images, np.arange(len(images)), transform, device)
    return encode_all(model, encoder, batch_size, flip_tta=flip_tta)


def search_images(
    images: Sequence[str | os.PathLike],
    loss: str,
    seed: int,
    k: int,
    data_root: str | os.PathLike,
    flip_tta: bool,
    batch_size: int,
    max_pixels: int,
) -> list[QueryResult]:
    """Top-``k`` test gallery matches of every image file for one run (run from the project root)."""
    if k < 1:
        raise LossbenchError(f"-k {k}: ask for at least 1 result")
    check_pipeline(loss, seed)
    stored, manifest = load_processed(paths.PROCESSED)
    pixels = np.stack([load_query_image(image, stored.shape[1], max_pixels) for image in images])
    _, gallery_rows = load_embeddings(paths.embeddings_dir(loss, seed), "gallery")
    index = load_index(paths.index_file(loss, seed))
    if index.ntotal != len(gallery_rows):
        raise LossbenchError(
            f"{paths.index_file(loss, seed)} holds {index.ntotal} items but the gallery has "
            f"{len(gallery_rows)}: run `dvc repro index@{loss}`"
        )
    model, _ = load_model(paths.model_dir(loss, seed), pick_device())
    scores, ids = search(index, embed_images(model, pixels, batch_size, flip_tta), k)
    by_row = manifest.set_index("row")
    return [
        QueryResult(str(image), query_identity(image, data_root), _matches(by_row, gallery_rows, s, i), p)
        for image, s, i, p in zip(images, scores, ids, pixels)
    ]


def _matches(manifest: pd.DataFrame, gallery_rows: np.ndarray, scores: np.ndarray, ids: np.ndarray) -> list[Match]:
    found = ids >= 0  # an approximate index may return fewer than k items
    rows = gallery_rows[ids[found]]
    meta = manifest.loc[rows]
    return [
        Match(rank, int(row), path, identity, float(score))
        for rank, (row, path, identity, score) in enumerate(
            zip(rows, meta["path"], meta["identity"], scores[found]), start=1
        )
    ]


def format_results(results: Sequence[QueryResult], loss: str) -> str:
    """Plain-text listing: a header per query, then one ``rank  score  identity  path`` line per match."""
    lines = []
    for result in results:
        identity = result.identity if result.identity is not None else "unknown"
        lines.append(f"query {result.image} (identity: {identity}; loss: {loss})")
        width = max((len(m.identity) for m in result.matches), default=8)
        lines += [f"  {m.rank:>3}  {m.score:.4f}  {m.identity:<{width}}  {m.path}" for m in result.matches]
    return "\n".join(lines)


def draw_grid(results: Sequence[QueryResult], images: np.ndarray, path: str | os.PathLike) -> Path:
    """One row per query: the query, then its matches framed green (same identity) or red; when the identity
    of any query is unknown, the figure makes no judgement and frames every match grey."""
    from lossbench.comparison.figures import RIGHT_COLOR, WRONG_COLOR, retrieval_grid

    judged = all(r.identity is not None for r in results)
    return retrieval_grid(
        queries=[r.pixels for r in results],
        results=[[np.asarray(images[m.row]) for m in r.matches] for r in results],
        correct=[[m.identity == r.identity for m in r.matches] for r in results],
        scores=[[m.score for m in r.matches] for r in results],
        path=path,
        titles=[f"{Path(r.image).name}\n({r.identity or 'identity unknown'})" for r in results],
        colors=(RIGHT_COLOR, WRONG_COLOR) if judged else (NEUTRAL_COLOR, NEUTRAL_COLOR),
    )
