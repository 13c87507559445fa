"""The indexing step of one run: its FAISS index over the test gallery, and what it returns for the test queries.

The index (``index.*``) is saved for search; the ids and scores of each query's nearest gallery items are saved
for the evaluation, which scores what the index returns next to the exact ranking (equal for ``Flat``).
"""

from __future__ import annotations

import numpy as np

from lossbench.config.params import Params
from lossbench.core import paths
from lossbench.core.io import atomic_save_npz
from lossbench.embedding.sets import load_embeddings
from lossbench.index.faiss_index import build_index, describe, save_index, search

MIN_NEIGHBOURS = 10
"""Neighbours kept per query: at least this many (CMC plots), at least the largest ``evaluate.topk``."""


def neighbour_count(topk: list[int], gallery_size: int) -> int:
    return min(max(max(topk), MIN_NEIGHBOURS), gallery_size)


def without_self(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's first ``k`` results other than itself (query i is item i): the all-vs-all neighbours."""
    keep = ids != np.arange(len(ids))[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept results first, in their ranked order
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def index_run(params: Params, loss: str, seed: int) -> str:
    """Build, save and search the run's index; return a summary line.

    Query/gallery protocol: the index holds the test gallery and is searched with the test queries. All-vs-all:
    it holds every test image (queries, then gallery), each searched for its neighbours other than itself.
    """
    directory = paths.embeddings_dir(loss, seed)
    gallery, _ = load_embeddings(directory, "gallery")
    query, _ = load_embeddings(directory, "query")
    all_vs_all = params.evaluate.protocol == "all_vs_all"
    if all_vs_all:
        gallery = query = np.concatenate([query, gallery])
    cfg = params.index
    index = build_index(
        gallery,
        cfg.factory,
        seed=params.seed,
        ef_search=cfg.ef_search,
        nprobe=cfg.nprobe,
        train_size=cfg.train_size,
    )
    save_index(index, paths.index_file(loss, seed))
    k = neighbour_count(params.evaluate.topk, len(gallery) - all_vs_all)
    scores, ids = search(index, query, k + all_vs_all)
    if all_vs_all:
        scores, ids = without_self(scores, ids, k)
    atomic_save_npz(paths.neighbours_file(loss, seed), {"ids": ids, "scores": scores})
    info = describe(index)
    return (
        f"{loss} seed {seed}: {info['type']} ({cfg.factory}) of {info['ntotal']} items, {len(query)} queries searched"
    )
