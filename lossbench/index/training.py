"""Training a FAISS index: how many vectors its k-means need, a seeded training sample, the training itself.

An index that needs training (IVF lists, PQ codebooks, …) is trained on at most ``index.train_size`` gallery
vectors, drawn at random with the study's seed, so a gallery larger than memory never has to be loaded whole.
FAISS's k-means want ``min_points_per_centroid`` (39) vectors per centroid; a ``train_size`` below that for
any k-means of the factory is a configuration error, caught before any training starts.
"""

from __future__ import annotations

import faiss
import numpy as np

from lossbench.core.errors import LossbenchError
from lossbench.metrics.ranking import as_embeddings

_TRAIN_SIZE_KEY = "params.yaml: index.train_size"


def _quantisers(index: faiss.Index) -> tuple[faiss.IndexIVF | None, faiss.ProductQuantizer | None]:
    """The IVF part and the product quantiser of ``index`` (``None`` where it has none)."""
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:
        ivf = None
    inner = faiss.downcast_index(ivf if ivf is not None else index)
    return ivf, getattr(inner, "pq", None)


def _kmeans(index: faiss.Index) -> list[tuple[str, int, int]]:
    """``(what, centroids, min points per centroid)`` of each k-means that training ``index`` runs."""
    ivf, pq = _quantisers(index)
    runs = []
    if ivf is not None:
        runs.append(("IVF lists", int(ivf.nlist), int(ivf.cp.min_points_per_centroid)))
    if pq is not None:
        runs.append(("PQ centroids per sub-vector", int(pq.ksub), int(pq.cp.min_points_per_centroid)))
    return runs


def seed_training(index: faiss.Index, seed: int) -> None:
    """Seed the k-means of the IVF coarse quantiser and of a product quantiser, when present."""
    for part in _quantisers(index):
        if part is not None:
            part.cp.seed = seed


def min_train_size(index: faiss.Index) -> tuple[int, str]:
    """Fewest training vectors FAISS recommends for ``index`` (0 if it runs no k-means) and why, in words."""
    runs = _kmeans(index)
    if not runs:
        return 0, ""
    what, centroids, per_centroid = max(runs, key=lambda run: run[1] * run[2])
    return centroids * per_centroid, f"{per_centroid} per centroid × {centroids} {what}"


def check_train_size(index: faiss.Index, factory: str, train_size: int | None) -> None:
    """Fail when ``train_size`` (``None`` = the whole gallery) is too small for the factory's k-means."""
    if train_size is None:
        return
    if int(train_size) < 1:
        raise LossbenchError(f"index.train_size must be a positive integer or null, got {train_size}")
    needed, why = min_train_size(index)
    if train_size < needed:
        raise LossbenchError(
            f"index.train_size = {train_size} is too small for index factory '{factory}': it needs at least "
            f"{needed} training vectors ({why}); raise index.train_size to {needed} or more, or set it to null "
            f"(train on the whole gallery), or choose a smaller index ({_TRAIN_SIZE_KEY})"
        )


def training_sample(vectors: np.ndarray, train_size: int | None, seed: int) -> np.ndarray:
    """The whole gallery if it has at most ``train_size`` rows (or ``train_size`` is None), else a seeded
    random sample of ``train_size`` rows in gallery order (a memmap reads only those rows)."""
    n = vectors.shape[0]
    if train_size is None or n <= train_size:
        return as_embeddings(vectors, "gallery embeddings")
    rows = np.sort(np.random.default_rng(seed).choice(n, size=int(train_size), replace=False))
    return as_embeddings(vectors[rows], "gallery embeddings")


def check_gallery_size(index: faiss.Index, factory: str, n: int) -> None:
    """Fail when ``n`` gallery vectors cannot train the factory's IVF lists (fewer vectors than lists)."""
    ivf, _ = _quantisers(index)
    nlist = 0 if ivf is None else int(ivf.nlist)
    if nlist > n:
        raise LossbenchError(
            f"index factory '{factory}' has {nlist} IVF lists but the gallery has only {n} vectors: "
            f"use at most IVF{max(1, n // 39)} (faiss wants ≥ 39 vectors per list) or 'Flat' "
            "(params.yaml: index.factory)"
        )


def train(index: faiss.Index, sample: np.ndarray, factory: str, gallery_size: int) -> None:
    """Train ``index`` on ``sample``; a gallery too small for the factory is a LossbenchError naming the fix."""
    n = sample.shape[0]
    check_gallery_size(index, factory, n)
    try:
        index.train(sample)
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1].split("failed: ")[-1]
        source = f"{n} gallery vectors" if n == gallery_size else f"a sample of {n} of {gallery_size} gallery vectors"
        raise LossbenchError(
            f"cannot train index factory '{factory}' on {source} ({reason}): choose a smaller "
            "index (fewer IVF lists, fewer PQ bits such as 'PQ8x4') or 'Flat' (params.yaml: index.factory)"
        ) from None
