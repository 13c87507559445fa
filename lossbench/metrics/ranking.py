"""Exact retrieval metrics: ranking, top-k / CMC, challenge score, mAP, MAP@R and R-precision.

Every query is ranked against the whole gallery by cosine similarity (float32, chunked over queries so
memory stays bounded); equal similarities are ordered by gallery index, so rankings are deterministic.
Similarities come from ``cosine_scores``, whose matrix products have a fixed shape and offset, so no
result depends on the chunk size (BLAS rounds one dot product differently inside differently shaped
products, which would reorder ties).
Definitions follow "A Metric Learning Reality Check" (Musgrave et al., 2020) and torchreid:

- top-k: share of queries with at least one same-label gallery item among the first k.
- mAP: average precision over the full gallery ranking, averaged over queries.
- R = number of gallery items with the query's label; R-precision = precision of the first R results;
  MAP@R = mean over the first R ranks of precision@i at each relevant rank i, divided by R.

Queries whose label has no gallery item cannot be scored; like torchreid they are counted in
``num_queries_excluded``, excluded from every metric, and reported with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np

from lossbench.core.errors import LossbenchError
from lossbench.metrics.catalogue import CHALLENGE_WEIGHTS, topk_key

_CHUNK_BYTES = 256 * 2**20
"""Working-memory budget of one query chunk (all temporaries of its query × gallery block)."""

SCORE_BLOCK = 16
"""Query rows per matrix product, at offsets that are multiples of it (see ``cosine_scores``)."""


def as_embeddings(array: np.ndarray, name: str) -> np.ndarray:
    """Check a 2-D finite embedding matrix and return it as C-contiguous float32."""
    out = np.ascontiguousarray(array, dtype=np.float32)
    if out.ndim != 2 or out.shape[0] == 0 or out.shape[1] == 0:
        raise LossbenchError(f"{name} must be a non-empty 2-D array (items × dim), got shape {out.shape}")
    if not np.isfinite(out).all():
        raise LossbenchError(f"{name} contains NaN or inf values: re-run the embed stage and check the model")
    return out


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)


def encode_labels(
    query_labels: Sequence, gallery_labels: Sequence, n_query: int, n_gallery: int
) -> tuple[np.ndarray, np.ndarray]:
    """Map query and gallery labels (any comparable type) to shared int64 codes, checking lengths."""
    q, g = np.asarray(query_labels), np.asarray(gallery_labels)
    if q.shape != (n_query,) or g.shape != (n_gallery,):
        raise LossbenchError(
            f"labels must be 1-D with one entry per embedding: got query labels {q.shape} for {n_query} "
            f"queries and gallery labels {g.shape} for {n_gallery} gallery items"
        )
    _, codes = np.unique(np.concatenate([q, g]), return_inverse=True)
    return codes[:n_query].astype(np.int64), codes[n_query:].astype(np.int64)


def cosine_similarity_chunks(
    query: np.ndarray, gallery: np.ndarray, chunk: int | None = None, bytes_per_cell: int = 32
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(query_slice, similarities)`` for blocks of queries against the whole gallery."""
    q, g = l2_normalize(query), l2_normalize(gallery)
    if chunk is None:
        chunk = chunk_rows(_CHUNK_BYTES // bytes_per_cell, g.shape[0])
    if chunk < 1:
        raise LossbenchError(f"chunk must be a positive number of queries, got {chunk}")
    for start in range(0, q.shape[0], chunk):
        rows = slice(start, min(start + chunk, q.shape[0]))
        yield rows, cosine_scores(q, g, rows)


def chunk_rows(cells: int, n_gallery: int) -> int:
    """Query rows per chunk for a budget of ``cells`` similarities: whole score blocks when they fit."""
    rows = max(1, int(cells) // max(1, n_gallery))
    return rows - rows % SCORE_BLOCK if rows >= SCORE_BLOCK else rows


def cosine_scores(query: np.ndarray, gallery: np.ndarray, rows: slice) -> np.ndarray:
    """Similarities of the normalised ``query[rows]`` to the normalised gallery, float32.

    Every product covers the ``SCORE_BLOCK`` rows from a multiple of ``SCORE_BLOCK`` (the last block may be
    short), so a score is the same whichever chunk asks for it; a chunk that cuts a block computes the
    whole block and keeps its rows (only chunks smaller than a block do that).
    """
    start, stop = rows.start, min(rows.stop, query.shape[0])
    first = start - start % SCORE_BLOCK
    out = np.empty((stop - start, gallery.shape[0]), dtype=np.float32)
    for block in range(first, stop, SCORE_BLOCK):
        sim = query[block : block + SCORE_BLOCK] @ gallery.T
        lo, hi = max(block, start), min(block + SCORE_BLOCK, stop)
        out[lo - start : hi - start] = sim[lo - block : hi - block]
    return out


def _top_k_order(sim: np.ndarray, k: int) -> np.ndarray:
    """Gallery indices of the k most similar items per row, best first, ties by gallery index."""
    n = sim.shape[1]
    if k >= n:
        return np.argsort(-sim, axis=1, kind="stable")
    # The k-th largest value per row; everything strictly above it is in, and the boundary ties with
    # the smallest gallery indices fill the remaining places, so exactly k items per row are kept.
    kth = -np.partition(-sim, k - 1, axis=1)[:, k - 1 : k]
    above = sim > kth
    tied = sim == kth
    need = k - above.sum(axis=1, keepdims=True)
    keep = above | (tied & (np.cumsum(tied, axis=1) <= need))
    cols = np.nonzero(keep)[1].reshape(sim.shape[0], k)  # row-major: ascending gallery index per row
    within = np.argsort(-np.take_along_axis(sim, cols, axis=1), axis=1, kind="stable")
    return np.take_along_axis(cols, within, axis=1)


def rank_gallery(
    query_emb: np.ndarray, gallery_emb: np.ndarray, k: int | None = None, chunk: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine ranking of the gallery for every query.

    Returns ``(scores, indices)``, both ``queries × k`` (k clipped to the gallery size; ``None`` = the
    whole gallery), best first, ties broken by gallery index. ``chunk`` = queries per matmul block
    (default: sized to a fixed memory budget).
    """
    query = as_embeddings(query_emb, "query embeddings")
    gallery = as_embeddings(gallery_emb, "gallery embeddings")
    _check_dims(query, gallery)
    k = gallery.shape[0] if k is None else int(k)
    if k < 1:
        raise LossbenchError(f"k must be at least 1, got {k}")
    k = min(k, gallery.shape[0])
    scores = np.empty((query.shape[0], k), dtype=np.float32)
    indices = np.empty((query.shape[0], k), dtype=np.int64)
    for rows, sim in cosine_similarity_chunks(query, gallery, chunk):
        order = _top_k_order(sim, k)
        indices[rows] = order
        scores[rows] = np.take_along_axis(sim, order, axis=1)
    return scores, indices


def challenge_score(top1: float, top5: float, top10: float) -> float:
    """The challenge score (:data:`CHALLENGE_WEIGHTS`: 600·top1 + 300·top5 + 100·top10) from accuracies given as
    fractions in [0, 1]."""
    values = {1: top1, 5: top5, 10: top10}
    for k, value in values.items():
        if not 0.0 <= value <= 1.0:
            raise LossbenchError(f"top{k} must be a fraction in [0, 1] (not a percentage), got {value}")
    return float(sum(CHALLENGE_WEIGHTS[k] * values[k] for k in CHALLENGE_WEIGHTS))


def _check_dims(query: np.ndarray, gallery: np.ndarray) -> None:
    if query.shape[1] != gallery.shape[1]:
        raise LossbenchError(
            f"query and gallery embeddings differ in dimension ({query.shape[1]} vs {gallery.shape[1]}): "
            "embed both with the same model"
        )


def _check_topk(topk: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(topk)
    if not ks or any(not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1 for k in ks):
        raise LossbenchError(f"topk must be a non-empty list of positive integers (e.g. [1, 5, 10]), got {topk}")
    return tuple(sorted(set(int(k) for k in ks) | set(CHALLENGE_WEIGHTS)))


def _count_not_above(ascending: np.ndarray, rows: np.ndarray, values: np.ndarray, inclusive: bool) -> np.ndarray:
    """For each ``values[i]``: how many entries of ``ascending[rows[i]]`` are < it (≤ it if ``inclusive``).

    A binary search run for all values at once (every row of ``ascending`` sorted ascending).
    """
    n = ascending.shape[1]
    flat, base = ascending.ravel(), rows.astype(np.int64) * n
    lo = np.zeros(len(values), dtype=np.int64)
    hi = np.full(len(values), n, dtype=np.int64)
    for _ in range(n.bit_length()):
        mid = (lo + hi) // 2
        probe = flat[base + np.minimum(mid, n - 1)]
        right = (probe <= values) if inclusive else (probe < values)
        open_ = lo < hi
        lo = np.where(open_ & right, mid + 1, lo)
        hi = np.where(open_ & ~right, mid, hi)
    return lo


def _earlier_ties(sim: np.ndarray, rows: np.ndarray, items: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each pair: how many gallery items before ``items[i]`` score exactly ``values[i]`` in row ``rows[i]``."""
    n = sim.shape[1]
    block = max(1, _CHUNK_BYTES // (8 * n))
    counts = np.empty(len(rows), dtype=np.int64)
    for start in range(0, len(rows), block):
        part = slice(start, start + block)
        earlier = np.arange(n)[None, :] < items[part, None]
        counts[part] = ((sim[rows[part]] == values[part, None]) & earlier).sum(axis=1)
    return counts


def _relevant_ranks(sim: np.ndarray, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
    """0-based rank of gallery item ``items[i]`` for query row ``rows[i]`` of ``sim``.

    The rank in the full ranking (similarity descending, ties by gallery index) without sorting
    indices: the number of items scoring higher, plus the equal-scoring items with a smaller index.
    """
    values = sim[rows, items]
    ascending = np.sort(sim, axis=1)
    not_above = _count_not_above(ascending, rows, values, inclusive=True)
    ranks = sim.shape[1] - not_above
    tied = not_above - _count_not_above(ascending, rows, values, inclusive=False) > 1
    if tied.any():
        ranks[tied] += _earlier_ties(sim, rows[tied], items[tied], values[tied])
    return ranks


class _Relevant:
    """The same-label gallery items of every query, as flat ``(query, gallery item)`` pair arrays."""

    def __init__(self, q_codes: np.ndarray, g_codes: np.ndarray, n_relevant: np.ndarray):
        self.q_codes, self.n_relevant = q_codes, n_relevant
        self.by_label = np.argsort(g_codes, kind="stable")  # gallery items grouped by label, index order
        counts = np.bincount(g_codes, minlength=int(q_codes.max()) + 1)
        self.label_start = np.cumsum(counts) - counts

    def pairs(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        """``(query position within rows, gallery item)`` of every relevant pair of the queries in ``rows``."""
        r = self.n_relevant[rows]
        query = np.repeat(np.arange(len(r)), r)
        within = np.arange(len(query)) - np.repeat(np.cumsum(r) - r, r)
        return query, self.by_label[np.repeat(self.label_start[self.q_codes[rows]], r) + within]


def evaluate_retrieval(
    query_emb: np.ndarray,
    query_labels: Sequence,
    gallery_emb: np.ndarray,
    gallery_labels: Sequence,
    topk: Sequence[int] = (1, 5, 10),
    chunk: int | None = None,
    per_query: bool = False,
) -> dict:
    """Exact retrieval metrics of queries against a gallery, as fractions in [0, 1] (score 0–1000).

    Keys: ``top{k}`` for every k in ``topk`` and always for 1, 5 and 10 (the challenge score needs
    them), ``score``, ``mAP``, ``map_at_r``, ``r_precision``, ``cmc`` (top-1 … top-K accuracies,
    K = the largest of those ks), ``num_queries`` (scored) and ``num_queries_excluded`` (label absent
    from the gallery). Vectorised over chunks of queries; no per-query Python loop. Only the ranks of
    the relevant items are computed (by counting higher scores in each sorted row), never a full
    argsort of the gallery. With ``per_query`` also ``per_query`` (metric → one value per scored query; each
    metric is the mean of its values) and ``scored`` (which input queries were scored).
    """
    ks = _check_topk(topk)
    query = as_embeddings(query_emb, "query embeddings")
    gallery = as_embeddings(gallery_emb, "gallery embeddings")
    _check_dims(query, gallery)
    q_codes, g_codes = encode_labels(query_labels, gallery_labels, query.shape[0], gallery.shape[0])

    n_relevant = np.bincount(g_codes, minlength=int(q_codes.max()) + 1)[q_codes]
    valid = n_relevant > 0
    excluded = int((~valid).sum())
    if not valid.any():
        raise LossbenchError(
            f"none of the {query.shape[0]} queries has a same-label item in the gallery of "
            f"{gallery.shape[0]}: check the query/gallery split (roles) of the evaluated identities"
        )
    if excluded:
        warnings.warn(
            f"{excluded} of {query.shape[0]} queries have no same-label gallery item; "
            "they are excluded from the retrieval metrics",
            stacklevel=2,
        )
    q_codes, n_relevant = q_codes[valid], n_relevant[valid]
    scored_position = np.cumsum(valid) - 1  # a scored query's row among the scored queries

    max_k = ks[-1]
    n_scored = int(valid.sum())
    first_hit = np.empty(n_scored, dtype=np.int64)
    ap = np.empty(n_scored, dtype=np.float64)
    ap_at_r = np.empty(n_scored, dtype=np.float64)
    hits_at_r = np.empty(n_scored, dtype=np.int64)
    relevant = _Relevant(q_codes, g_codes, n_relevant)
    for all_rows, all_sim in cosine_similarity_chunks(query, gallery, chunk, bytes_per_cell=64):
        keep = valid[all_rows]
        if not keep.any():
            continue
        sim = all_sim[keep]  # every query is scored in the same blocks, so its similarities do not depend on the others
        first = int(scored_position[all_rows.start + int(np.argmax(keep))])
        rows = slice(first, first + len(sim))
        pair_query, items = relevant.pairs(rows)
        r = n_relevant[rows]
        # each query's relevant ranks in ascending order: hit number k (1-based) sits at rank[k - 1]
        rank = np.sort(pair_query * gallery.shape[0] + _relevant_ranks(sim, pair_query, items))
        rank -= pair_query * gallery.shape[0]
        starts = np.cumsum(r) - r
        hit_number = np.arange(1, len(rank) + 1) - np.repeat(starts, r)
        precision_at_hits = hit_number / (rank + 1.0)
        within_r = rank < np.repeat(r, r)
        first_hit[rows] = rank[starts]
        ap[rows] = np.bincount(pair_query, weights=precision_at_hits, minlength=len(r)) / r
        ap_at_r[rows] = np.bincount(pair_query, weights=precision_at_hits * within_r, minlength=len(r)) / r
        hits_at_r[rows] = np.bincount(pair_query, weights=within_r, minlength=len(r))

    values = per_query_values(first_hit, ks)
    values.update({"mAP": ap, "map_at_r": ap_at_r, "r_precision": hits_at_r / n_relevant})
    result: dict = {key: float(np.mean(value)) for key, value in values.items()}
    result["cmc"] = [float(np.mean(first_hit < k)) for k in range(1, max_k + 1)]
    result["num_queries"] = n_scored
    result["num_queries_excluded"] = excluded
    if per_query:
        result["per_query"] = values
        result["scored"] = valid
    return result


def per_query_values(first_hit: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-query ``top{k}`` hits (0/1) and challenge score from each query's 0-based rank of its first hit.

    Their means are the top-k accuracies and the challenge score (:data:`CHALLENGE_WEIGHTS`).
    """
    values = {topk_key(k): (first_hit < k).astype(np.float64) for k in sorted(set(ks) | set(CHALLENGE_WEIGHTS))}
    values["score"] = sum(weight * values[topk_key(k)] for k, weight in CHALLENGE_WEIGHTS.items())
    return values
