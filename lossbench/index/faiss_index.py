"""FAISS index layer: build any ``faiss.index_factory`` index for inner product, save, load, search.

Vectors are L2-normalised embeddings, so inner product is cosine similarity. Gallery item ``i`` gets
id ``i`` (its row in the gallery embedding array). Builds are deterministic for a given seed except
for HNSW graphs built with several threads (their insertion order depends on thread scheduling).
The gallery may be a memmap larger than memory: training reads a seeded sample, adding reads chunks.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import faiss
import numpy as np

from lossbench.core.errors import LossbenchError
from lossbench.core.io import _atomic_path
from lossbench.index.training import check_gallery_size, check_train_size, seed_training, train, training_sample
from lossbench.metrics.ranking import as_embeddings

_FACTORY_HINT = (
    "any faiss.index_factory string, e.g. 'Flat' (exact), 'HNSW32', 'IVF64,Flat', "
    "'IVF64,PQ16' (params.yaml: index.factory)"
)
ADD_CHUNK_BYTES = 64 << 20
"""Gallery vectors are added to an index in chunks of this many bytes (float32), read one at a time."""


def as_vectors(vectors: np.ndarray, name: str, dim: int | None = None) -> np.ndarray:
    """Check a 2-D finite matrix (of width ``dim`` if given) and return it C-contiguous float32."""
    out = as_embeddings(vectors, name)
    if dim is not None and out.shape[1] != dim:
        raise LossbenchError(
            f"{name} have dimension {out.shape[1]} but the index has {dim}: "
            "embed queries and gallery with the same model, then rebuild the index"
        )
    return out


def set_search_params(index: faiss.Index, ef_search: int | None = None, nprobe: int | None = None) -> None:
    """Set HNSW ``efSearch`` and/or IVF ``nprobe`` (``None`` keeps the current value)."""
    space = faiss.ParameterSpace()
    for name, value in (("efSearch", ef_search), ("nprobe", nprobe)):
        if value is None:
            continue
        if int(value) < 1:
            raise LossbenchError(f"{name} must be a positive integer, got {value}")
        try:
            space.set_index_parameter(index, name, int(value))
        except RuntimeError:
            kind = "HNSW" if name == "efSearch" else "IVF"
            raise LossbenchError(
                f"{name}={value} applies only to {kind} indexes, but this index is "
                f"{type(faiss.downcast_index(index)).__name__}: remove it or use a {kind} factory"
            ) from None


def new_index(dim: int, factory: str) -> faiss.Index:
    """An empty inner-product index from ``factory`` for ``dim``-d vectors; a bad factory is a LossbenchError."""
    try:
        return faiss.index_factory(int(dim), factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1].split(": ")[-1]
        raise LossbenchError(
            f"invalid index factory {factory!r} for {dim}-d embeddings ({reason}): use {_FACTORY_HINT}"
        ) from None


def check_factory(factory: str, dims: set[int], train_size: int | None, gallery_size: int | None = None) -> None:
    """Fail now, not after training, if ``factory`` cannot index embeddings of each of ``dims``, if
    ``train_size`` training vectors are too few for it, or if a gallery of ``gallery_size`` items is."""
    for dim in sorted(dims):
        index = new_index(dim, factory)
        check_train_size(index, factory, train_size)
        if gallery_size is not None:
            check_gallery_size(index, factory, gallery_size)


def _gallery(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as an array (a memmap stays one) after checking it is a non-empty matrix."""
    vectors = vectors if isinstance(vectors, np.ndarray) else np.asarray(vectors)
    if vectors.ndim != 2 or 0 in vectors.shape:
        raise LossbenchError(
            f"gallery embeddings must be a non-empty 2-D array (items × dim), got shape {vectors.shape}"
        )
    return vectors


def chunk_rows(dim: int) -> int:
    """Gallery rows added to an index at a time: :data:`ADD_CHUNK_BYTES` of float32 vectors."""
    return max(1, ADD_CHUNK_BYTES // (4 * int(dim)))


def _fill(index: faiss.Index, gallery: np.ndarray, rows: int) -> float:
    """Add ``gallery`` to ``index`` ``rows`` at a time (row i gets id i); return the largest |norm - 1|."""
    with_ids = isinstance(faiss.downcast_index(index), (faiss.IndexIDMap, faiss.IndexIDMap2))
    worst = 0.0
    for start in range(0, gallery.shape[0], rows):
        chunk = as_vectors(gallery[start : start + rows], "gallery embeddings")
        worst = max(worst, float(np.abs(np.linalg.norm(chunk, axis=1) - 1.0).max()))
        if with_ids:
            index.add_with_ids(chunk, np.arange(start, start + chunk.shape[0], dtype=np.int64))
        else:
            index.add(chunk)
    return worst


def build_index(
    vectors: np.ndarray,
    factory: str = "Flat",
    threads: int | None = None,
    seed: int = 0,
    ef_search: int | None = None,
    nprobe: int | None = None,
    train_size: int | None = None,
    rows_per_chunk: int | None = None,
) -> faiss.Index:
    """Build an inner-product index of ``vectors`` (gallery row i gets id i), training it if needed.

    ``vectors`` may be a memmap larger than memory: an index that needs training is trained on at most
    ``train_size`` rows (a sample seeded by ``seed``; ``None`` = all rows), then the gallery is added
    ``rows_per_chunk`` rows at a time (default :func:`chunk_rows`), so memory beyond the index itself
    stays bounded. ``threads`` sets FAISS's (process-wide) OpenMP thread count; ``ef_search`` / ``nprobe``
    set the HNSW / IVF search breadth and are stored with the index.
    """
    vectors = _gallery(vectors)
    if threads is not None:
        if int(threads) < 1:
            raise LossbenchError(f"threads must be a positive integer, got {threads}")
        faiss.omp_set_num_threads(int(threads))
    index = new_index(vectors.shape[1], factory)
    check_train_size(index, factory, train_size)
    seed_training(index, seed)
    if not index.is_trained:
        train(index, training_sample(vectors, train_size, seed), factory, vectors.shape[0])
    worst_norm = _fill(index, vectors, rows_per_chunk or chunk_rows(vectors.shape[1]))
    if worst_norm > 1e-3:
        warnings.warn(
            "gallery embeddings are not L2-normalised: inner-product scores are not cosine similarities", stacklevel=2
        )
    set_search_params(index, ef_search=ef_search, nprobe=nprobe)
    return index


def save_index(index: faiss.Index, path: str | os.PathLike) -> None:
    """Write ``index`` to ``path`` atomically (temporary file, then rename)."""
    with _atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))


def load_index(path: str | os.PathLike) -> faiss.Index:
    """Read an index written by :func:`save_index`."""
    path = Path(path)
    if not path.is_file():
        raise LossbenchError(f"FAISS index {path} not found: build it with `dvc repro index@<loss>`")
    try:
        return faiss.read_index(str(path))
    except RuntimeError:
        raise LossbenchError(
            f"{path} is not a readable FAISS index: rebuild it with `dvc repro --force index@<loss>`"
        ) from None


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` ``(scores, ids)`` per query, best first, ``k`` clipped to the index size.

    Approximate indexes (IVF with a small ``nprobe``) may find fewer than k items for a query: the
    missing slots have id -1 and score -3.4e38 (the FAISS convention), so check ``ids >= 0``.
    """
    if index.ntotal == 0:
        raise LossbenchError("the FAISS index is empty: rebuild it from a non-empty gallery")
    if int(k) < 1:
        raise LossbenchError(f"k must be at least 1, got {k}")
    queries = as_vectors(queries, "query embeddings", dim=index.d)
    scores, ids = index.search(queries, min(int(k), int(index.ntotal)))
    return scores, ids


def serialized_bytes(index: faiss.Index) -> int:
    """Size of ``index`` as written by :func:`save_index`, counted without holding a serialised copy."""
    total = 0

    def count(chunk: bytes) -> int:
        nonlocal total
        total += len(chunk)
        return len(chunk)

    faiss.write_index(index, faiss.PyCallbackIOWriter(count))
    return total


def describe(index: faiss.Index) -> dict:
    """Type, size, dimension, metric, search settings and serialised size of an index."""
    info = {
        "type": type(faiss.downcast_index(index)).__name__,
        "ntotal": int(index.ntotal),
        "dim": int(index.d),
        "metric": "inner_product" if index.metric_type == faiss.METRIC_INNER_PRODUCT else "l2",
        "bytes": serialized_bytes(index),
    }
    try:
        info["nprobe"] = int(faiss.extract_index_ivf(index).nprobe)
    except RuntimeError:
        pass
    hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
    if hnsw is not None:
        info["ef_search"] = int(hnsw.efSearch)
    return info
