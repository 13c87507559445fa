"""Streaming evaluation of embeddings: exact ranking metrics, verification metrics and identity-bootstrap
replicates of every metric, with memory bounded independently of queries × gallery.

The cosine similarity matrix is computed in blocks of query rows (``chunk_bytes`` of float32 per block)
and never kept. Each block updates four summaries, then is dropped:

- **Ranking (exact).** The 0-based rank of every relevant (same-label) gallery item in the full ranking
  (similarity descending, ties by gallery index): items in higher score bins are counted from the
  block's per-row histogram, items in the same bin are ranked exactly (a sort of that bin's few members).
  top-k / CMC, challenge score, mAP, MAP@R and R-precision follow as in ``lossbench.metrics.ranking``.
- **Score histograms.** Every pair's score falls into one of ``FINE_BINS`` equal bins of [-1, 1]
  (a monotone map). A global genuine/impostor histogram gives the point ROC; histograms per *weight
  group* (queries whose bootstrap weights are equal in every replicate: one identity) on a coarser grid
  (the fine bins merged by 2^shift, so that groups × bins ≤ ``GROUP_CELLS``) give replicate b's ROC as
  ``weights_b @ counts`` — one matrix product per block of replicates.
- **The exact tail.** The highest ⌈2·max_far·N_impostor⌉ + 64 impostor scores (all ties of the
  smallest one included; merged block by block with ``np.partition``) and every genuine score above
  them, with their query's group. TAR@FAR is read there exactly, at the last ROC point with FPR ≤ far
  (ties form one point), for unit weights and for every replicate. A replicate whose operating point
  lies below the tail (its weights put less than half the unweighted share of the impostor mass in the
  tail) reads its TAR from the binned ROC instead, a lower bound of the exact one (binned points are
  exact points); ``bounds["tar_replicates_from_bins"]`` counts them.

Error bound of ROC-AUC and EER. Every binned ROC point is an exact ROC point (accept every pair whose bin
is ≥ b), so between two consecutive binned points the exact ROC is a monotone staircase inside the
rectangle Δfpr_b × Δtpr_b spanned by bin b's impostors and genuines, while the binned ROC is its diagonal.
Hence |AUC_binned − AUC| ≤ ½ Σ_b Δfpr_b·Δtpr_b (half the mass of genuine–impostor pairs sharing a bin),
and the exact EER lies where the line fpr = 1 − tpr crosses the same rectangle: for the crossing segment
(x0, y0)–(x1, y1), |EER_binned − EER| ≤ min(x1, 1 − y0) − max(x0, 1 − y1) ≤ min(Δfpr, Δtpr). Both bounds
are computed from the counts, for the point values and for every replicate (``bounds``: the point ones
and the largest over the replicates). TAR@FAR and ``impostors_above_*`` are exact. Why bins: an exact
weighted AUC needs the order of all Q×G pairs (the previous path's sort); on bins every replicate is one
matrix product, and the bound says what that costs (about 1e-6 in AUC on the benchmark's data).

Protocols. Query × gallery; or *all-vs-all* (``gallery=None``): every item queries all the others
(itself excluded), as pytorch-metric-learning's ``ref_includes_query=True`` and the Reality Check; items
whose label occurs once are not scored in ranking but stay in the gallery. Verification in all-vs-all
uses every *ordered* pair of distinct items: each unordered pair then counts twice with one score, so
the unit-weight ROC equals that of the unordered pairs, while every pair keeps the weight of its query
item in the bootstrap exactly as in the query × gallery protocol.

Cost (bench/evaluation_scale.py, 128-d, B = 2000, 1 thread): 10^4 × 10^4 in 4.3 s / 517 MB peak,
10^5 × 10^5 in 292 s / 1.8 GB.

Replicates. Weights are identity-bootstrap counts ``[B, Q]`` (``lossbench.evaluation.bootstrap.identity_weights``, by
query label, ``resamples`` and ``seed``; or given). Ranking replicates are ``weights @ values /
weights.sum()`` over the scored queries, verification replicates weight every pair by its query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lossbench.core.errors import LossbenchError
from lossbench.metrics.catalogue import CHALLENGE_WEIGHTS, far_key
from lossbench.metrics.ranking import chunk_rows, cosine_scores

CHUNK_BYTES = 48 * 2**20
"""Bytes of one block of query rows × gallery float32 similarities (working memory is about 6×)."""

FINE_BINS = 2**16
"""Bins of the global score histograms over [-1, 1] (point ROC-AUC and EER)."""

GROUP_BINS = 2**12, 2**14
"""Bins of the per-group histograms (replicate ROC-AUC and EER): at least the first (fewer only when groups × bins
> GROUP_CELLS), up to the second while groups × bins ≤ ``SMALL_CELLS`` — a test set of few identities gets the
finer grid at the same cost (B × groups × bins flops) as a larger one gets the coarser grid."""

SMALL_CELLS = 2**22

GROUP_CELLS = 2**25
"""Most cells of one per-group histogram (float64: 256 MB)."""

TAIL_FACTOR, TAIL_MARGIN = 2.0, 2**17
"""Impostors kept exactly: ⌈TAIL_FACTOR · max_far · impostor pairs⌉ + TAIL_MARGIN. The margin (131,072 scores,
about 2 MB with their genuine neighbours) keeps every replicate's TAR exact on test sets of up to that many
impostor pairs, where a replicate's resampled identities can shift the operating point far from the unit-weight
one; beyond, the factor covers the replicates (a replicate outside the tail is counted in ``bounds``)."""

_REPLICATE_ELEMENTS = 2**21
"""Elements of one working array per block of replicates."""

_FLOOR = np.float32(np.finfo(np.float32).min)
"""Tail threshold before any pruning: every finite score is kept, excluded pairs (−inf) never are."""


@dataclass
class StreamingResult:
    """Metrics, per-query values (scored queries, input order), replicates ([B] per key) and curves."""

    metrics: dict
    per_query: dict[str, np.ndarray]
    replicates: dict[str, np.ndarray]
    cmc: list[float]
    roc: list[dict]
    bounds: dict
    scored: np.ndarray
    group_weights: np.ndarray = field(repr=False)
    scored_groups: np.ndarray = field(repr=False)

    def add_per_query(self, values: Mapping[str, np.ndarray]) -> None:
        """Add per-scored-query values: their means, per-query values and replicates under the same weights.

        E.g. what a FAISS index returns: ``add_per_query({"index_" + k: v for k, v in
        topk_values(first_hit, topk).items()})``.
        """
        for key, value in values.items():
            v = np.asarray(value, dtype=np.float64)
            if v.shape != self.scored_groups.shape:
                raise LossbenchError(
                    f"{key}: need one value per scored query ({self.scored_groups.size}), got shape {v.shape}"
                )
            self.per_query[key] = v
            self.metrics[key] = float(np.mean(v))
            self.replicates[key] = mean_replicates(v, self.group_weights, self.scored_groups)


# --------------------------------------------------------------------------------------------------
# Inputs, weights


def _embeddings(array: np.ndarray, name: str) -> np.ndarray:
    """2-D, finite, L2-normalised float32 rows."""
    x = np.ascontiguousarray(array, dtype=np.float32)
    if x.ndim != 2 or 0 in x.shape:
        raise LossbenchError(f"{name} must be a non-empty 2-D array (items × dim), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise LossbenchError(f"{name} contain NaN or inf values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)


def _labels(labels: Sequence, n: int, name: str) -> np.ndarray:
    out = np.asarray(labels)
    if out.shape != (n,):
        raise LossbenchError(f"{name} must be 1-D with one entry per embedding ({n}), got shape {out.shape}")
    return out


def group_weights(groups: Sequence, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(counts [resamples, n], group of each query)`` with ``counts[:, group] ==
    lossbench.stats.identity_weights(groups, resamples, seed)`` (the same draws), without the [B, Q] array."""
    labels = np.asarray(groups)
    if int(resamples) != resamples or resamples < 1:
        raise LossbenchError(f"resamples must be a positive integer, got {resamples}")
    _, inverse = np.unique(labels, return_inverse=True)
    n = int(inverse.max()) + 1
    draws = np.random.default_rng(seed).integers(0, n, size=(int(resamples), n))
    offsets = (np.arange(int(resamples)) * n)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=int(resamples) * n).reshape(-1, n)
    return counts.astype(np.int32), inverse.ravel()


def weight_groups(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(weights of each group [B, n], group of each query)``: queries with identical weight columns share a group."""
    w = np.asarray(weights)
    if w.ndim != 2 or not np.isfinite(w).all() or (w < 0).any():
        raise LossbenchError(f"weights must be a finite, non-negative [replicates, queries] array, got {w.shape}")
    columns, inverse = np.unique(np.ascontiguousarray(w.T), axis=0, return_inverse=True)
    return np.ascontiguousarray(columns.T), inverse.ravel()


def mean_replicates(values: np.ndarray, weights: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``[B]`` weighted means of per-query ``values`` when query q weighs ``weights[:, groups[q]]``
    (the same products, in the same blocks, as ``lossbench.stats.mean_replicates``)."""
    out = np.empty(weights.shape[0])
    step = max(1, _REPLICATE_ELEMENTS // values.shape[0])
    for start in range(0, weights.shape[0], step):
        chunk = weights[start : start + step, groups].astype(np.float64)
        out[start : start + step] = (chunk @ values) / chunk.sum(axis=1)
    return out


# --------------------------------------------------------------------------------------------------
# Streaming pass


def _fine_bins(scores: np.ndarray) -> np.ndarray:
    """Monotone map of scores to ``FINE_BINS`` bins of [-1, 1] (int32); the same float ops for every array."""
    t = scores + np.float32(1.0)
    t *= np.float32(FINE_BINS / 2)
    np.clip(t, 0, FINE_BINS - 1, out=t)
    return t.astype(np.int32)


class _Relevant:
    """Same-label gallery items of each query as flat ``(query row, gallery item)`` pairs."""

    def __init__(self, q_codes: np.ndarray, g_codes: np.ndarray, all_vs_all: bool):
        self.q_codes, self.all_vs_all = q_codes, all_vs_all
        self.by_label = np.argsort(g_codes, kind="stable")
        counts = np.bincount(g_codes, minlength=int(max(q_codes.max(), g_codes.max())) + 1)
        self.label_start = np.cumsum(counts) - counts
        self.count = counts[q_codes]
        self.n_relevant = self.count - int(all_vs_all)

    def pairs(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        r = self.count[rows]
        query = np.repeat(np.arange(len(r)), r)
        within = np.arange(len(query)) - np.repeat(np.cumsum(r) - r, r)
        items = self.by_label[np.repeat(self.label_start[self.q_codes[rows]], r) + within]
        if self.all_vs_all:
            keep = items != query + rows.start
            query, items = query[keep], items[keep]
        return query, items


class _Tail:
    """The highest impostor scores (≥ ``threshold``, at least ``size`` of them) and genuine scores above them."""

    def __init__(self, size: int):
        self.size, self.threshold = size, _FLOOR
        self.impostor: list[tuple[np.ndarray, np.ndarray]] = []
        self.genuine: list[tuple[np.ndarray, np.ndarray]] = []
        self.held = 0

    def add_impostors(self, flat: np.ndarray, groups_of_flat) -> None:
        """Keep the entries of ``flat`` (impostor scores, excluded pairs −inf) ≥ the threshold."""
        idx = np.flatnonzero(flat >= self.threshold)
        if idx.size > self.size:
            kth = np.partition(flat[idx], idx.size - self.size)[idx.size - self.size]
            self.threshold = max(self.threshold, kth)
            idx = idx[flat[idx] >= self.threshold]
        self.impostor.append((flat[idx], groups_of_flat(idx)))
        self.held += idx.size
        if self.held > 2 * self.size:
            self._prune()

    def add_genuine(self, scores: np.ndarray, groups: np.ndarray) -> None:
        keep = scores >= self.threshold
        self.genuine.append((scores[keep], groups[keep]))

    def _prune(self) -> None:
        scores = np.concatenate([s for s, _ in self.impostor])
        groups = np.concatenate([g for _, g in self.impostor])
        if scores.size > self.size:
            self.threshold = max(self.threshold, np.partition(scores, scores.size - self.size)[scores.size - self.size])
        keep = scores >= self.threshold
        self.impostor, self.held = [(scores[keep], groups[keep])], int(keep.sum())

    def sorted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(scores, genuine, group)`` of the kept pairs, scores descending."""
        self._prune()
        parts = [(s, g, False) for s, g in self.impostor] + [(s, g, True) for s, g in self.genuine]
        scores = np.concatenate([s for s, _, _ in parts])
        groups = np.concatenate([g for _, g, _ in parts])
        genuine = np.concatenate([np.full(s.size, flag) for s, _, flag in parts])
        keep = scores >= self.threshold
        order = np.argsort(-scores[keep], kind="stable")
        return scores[keep][order], genuine[keep][order], groups[keep][order]


@dataclass
class _Pass:
    """Everything one pass over the similarity blocks accumulates."""

    first_hit: np.ndarray
    ap: np.ndarray
    ap_at_r: np.ndarray
    hits_at_r: np.ndarray
    fine_total: np.ndarray
    fine_genuine: np.ndarray
    group_total: np.ndarray
    group_genuine: np.ndarray
    tail: _Tail


def _within_bin_ranks(
    sim: np.ndarray, cell: np.ndarray, n_cells: int, pr: np.ndarray, items: np.ndarray, pair_cell: np.ndarray
) -> np.ndarray:
    """For each pair: items of its row and bin ranked before it (higher score, or equal with a smaller index)."""
    lookup = np.zeros(n_cells, dtype=bool)
    lookup[pair_cell] = True
    flat_sel = np.flatnonzero(lookup[cell.ravel()])  # row-major: (row, item) ascending
    n_gallery = sim.shape[1]
    keys = cell.ravel()[flat_sel]
    order = np.lexsort((flat_sel % n_gallery, -sim.ravel()[flat_sel], keys))
    position = np.empty(order.size, dtype=np.int64)
    position[order] = np.arange(order.size)
    start = np.searchsorted(keys[order], pair_cell, side="left")
    own = np.searchsorted(flat_sel, pr.astype(np.int64) * n_gallery + items)
    return position[own] - start


def _ranking_update(
    acc: _Pass, rows: slice, pr: np.ndarray, rank: np.ndarray, n_relevant: np.ndarray, n_gallery: int
) -> None:
    """Per-query first hit, AP, AP@R and hits within R from the relevant ranks of one block (as ranking.py)."""
    r = n_relevant[rows]
    rank = np.sort(pr * n_gallery + rank) - pr * n_gallery  # pr is sorted: ranks ascending per query
    starts = np.cumsum(r) - r
    hit_number = np.arange(1, len(rank) + 1) - np.repeat(starts, r)
    precision_at_hits = hit_number / (rank + 1.0)
    within_r = rank < np.repeat(r, r)
    scored = r > 0
    acc.first_hit[rows][scored] = rank[starts[scored]]
    with np.errstate(invalid="ignore", divide="ignore"):
        acc.ap[rows] = np.bincount(pr, weights=precision_at_hits, minlength=len(r)) / r
        acc.ap_at_r[rows] = np.bincount(pr, weights=precision_at_hits * within_r, minlength=len(r)) / r
    acc.hits_at_r[rows] = np.bincount(pr, weights=within_r, minlength=len(r))


def _add_by_group(out: np.ndarray, groups: np.ndarray, rows: np.ndarray) -> None:
    """``out[groups[i]] += rows[i]`` for every i (groups may repeat)."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    out[sorted_groups[starts]] += np.add.reduceat(rows[order], starts, axis=0)


def _stream(
    query: np.ndarray,
    gallery: np.ndarray,
    relevant: _Relevant,
    groups: np.ndarray,
    n_groups: int,
    shift: int,
    tail_size: int,
    rows_per_chunk: int,
) -> _Pass:
    n_query, n_gallery = query.shape[0], gallery.shape[0]
    n_bins = FINE_BINS >> shift
    acc = _Pass(
        first_hit=np.full(n_query, -1, dtype=np.int64),
        ap=np.zeros(n_query),
        ap_at_r=np.zeros(n_query),
        hits_at_r=np.zeros(n_query),
        fine_total=np.zeros(FINE_BINS + 1, dtype=np.int64),
        fine_genuine=np.zeros(FINE_BINS + 1, dtype=np.int64),
        group_total=np.zeros((n_groups, n_bins)),
        group_genuine=np.zeros((n_groups, n_bins)),
        tail=_Tail(tail_size),
    )
    for start in range(0, n_query, rows_per_chunk):
        rows = slice(start, min(start + rows_per_chunk, n_query))
        c = rows.stop - rows.start
        local = np.arange(c)
        sim = cosine_scores(query, gallery, rows)
        if relevant.all_vs_all:
            sim[local, local + start] = -np.inf
        pr, items = relevant.pairs(rows)
        values = sim[pr, items]

        cell = _fine_bins(sim)
        if relevant.all_vs_all:
            cell[local, local + start] = FINE_BINS  # dump bin: FINE_BINS >> shift == n_bins, dropped below
        acc.fine_total += np.bincount(cell.ravel(), minlength=FINE_BINS + 1)
        pair_fine = _fine_bins(values)
        acc.fine_genuine += np.bincount(pair_fine, minlength=FINE_BINS + 1)
        np.right_shift(cell, shift, out=cell)
        cell += (local * (n_bins + 1)).astype(np.int32)[:, None]
        row_hist = np.bincount(cell.ravel(), minlength=c * (n_bins + 1)).reshape(c, n_bins + 1)[:, :n_bins]
        _add_by_group(acc.group_total, groups[rows], row_hist)
        pair_bin = pair_fine >> shift
        np.add.at(acc.group_genuine, (groups[rows][pr], pair_bin), 1.0)

        above = np.cumsum(row_hist[:, ::-1], axis=1)[:, ::-1]  # items in bins ≥ b
        above = np.concatenate([above[:, 1:], np.zeros((c, 1), dtype=above.dtype)], axis=1)  # bins > b
        pair_cell = pr * (n_bins + 1) + pair_bin
        rank = above[pr, pair_bin] + _within_bin_ranks(sim, cell, c * (n_bins + 1), pr, items, pair_cell)
        _ranking_update(acc, rows, pr, rank, relevant.n_relevant, n_gallery)

        acc.tail.add_genuine(values, groups[rows][pr])
        sim[pr, items] = -np.inf
        block_groups = groups[rows]
        acc.tail.add_impostors(sim.ravel(), lambda idx, g=block_groups: g[idx // n_gallery])
    return acc


# --------------------------------------------------------------------------------------------------
# ROC from histograms and from the exact tail


def _binned_roc(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` [r, bins + 1] from per-bin masses [r, bins] (bins ascending in score); NaN without mass."""
    g = np.concatenate([np.zeros((genuine.shape[0], 1)), np.cumsum(genuine[:, ::-1], axis=1)], axis=1)
    i = np.concatenate([np.zeros((impostor.shape[0], 1)), np.cumsum(impostor[:, ::-1], axis=1)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr, fpr = g / g[:, -1:], i / i[:, -1:]
    bad = (g[:, -1] <= 0) | (i[:, -1] <= 0)
    tpr[bad], fpr[bad] = np.nan, np.nan
    return fpr, tpr


def _auc_eer(fpr: np.ndarray, tpr: np.ndarray) -> dict[str, np.ndarray]:
    """Per row: ROC-AUC and EER of the binned ROC with their error bounds (module docstring)."""
    rows = np.arange(fpr.shape[0])
    bad = np.isnan(fpr[:, 0])
    auc = np.trapezoid(tpr, fpr, axis=1)
    auc_bound = 0.5 * np.sum(np.diff(fpr, axis=1) * np.diff(tpr, axis=1), axis=1)
    gap = (1.0 - tpr) - fpr
    i = np.argmax(gap <= 0.0, axis=1)
    i[bad] = 1
    x0, x1, y0, y1 = fpr[rows, i - 1], fpr[rows, i], tpr[rows, i - 1], tpr[rows, i]
    now, before = gap[rows, i], gap[rows, i - 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = before / (before - now)
    exact = now == 0.0
    eer = np.where(exact, x1, x0 + t * (x1 - x0))
    eer_bound = np.where(exact, 0.0, np.minimum(x1, 1.0 - y0) - np.maximum(x0, 1.0 - y1))
    out = {"roc_auc": auc, "eer": eer, "roc_auc_bound": auc_bound, "eer_bound": eer_bound}
    for v in out.values():
        v[bad] = np.nan
    return out


def _binned_tar(fpr: np.ndarray, tpr: np.ndarray, far: float) -> np.ndarray:
    idx = np.maximum((fpr <= far).sum(axis=1) - 1, 0)
    return tpr[np.arange(fpr.shape[0]), idx]


class _TailRoc:
    """The exact ROC of the kept top pairs under any weights: blocks of tie groups, then one block per replicate."""

    def __init__(self, scores: np.ndarray, genuine: np.ndarray, groups: np.ndarray, n_groups: int):
        self.genuine, self.groups, self.n = genuine, groups, scores.size
        self.tie_end = np.r_[scores[1:] != scores[:-1], True]
        cuts = np.flatnonzero(self.tie_end) + 1
        # about √(16 n / groups) blocks balances the block products (groups × blocks) with one block's scan
        n_blocks = max(1, min(self.n // 16, int(np.sqrt(16 * self.n / n_groups)) + 1))
        marks = np.arange(1, n_blocks) * (self.n // n_blocks)
        self.bounds = np.unique(np.r_[0, cuts[np.searchsorted(cuts, marks)], self.n])
        self.max_width = int(np.diff(self.bounds).max())
        block = np.searchsorted(self.bounds, np.arange(self.n), side="right") - 1
        nb = self.bounds.size - 1
        self.block_impostor = self._counts(block[~genuine], groups[~genuine], nb, n_groups)
        self.block_genuine = self._counts(block[genuine], groups[genuine], nb, n_groups)

    @staticmethod
    def _counts(block: np.ndarray, groups: np.ndarray, nb: int, n_groups: int) -> np.ndarray:
        return (
            np.bincount(groups.astype(np.int64) * nb + block, minlength=n_groups * nb)
            .reshape(n_groups, nb)
            .astype(np.float64)
        )

    def tar(
        self, weights: np.ndarray, genuine_total: np.ndarray, impostor_total: np.ndarray, fars: Sequence[float]
    ) -> dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per far: ``(tar, impostor mass accepted, covered)`` [r] for weights [r, groups] at the last
        point with FPR ≤ far."""
        imp_cum = np.cumsum(weights @ self.block_impostor, axis=1)
        gen_cum = np.cumsum(weights @ self.block_genuine, axis=1)
        step = max(1, _REPLICATE_ELEMENTS // self.max_width)  # rows of one block scan
        out = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            for f in fars:
                parts = [
                    self._at(weights[s], imp_cum[s], gen_cum[s], genuine_total[s], impostor_total[s], f)
                    for s in (slice(a, a + step) for a in range(0, weights.shape[0], step))
                ]
                out[f] = tuple(np.concatenate(column) for column in zip(*parts))
        return out

    def _at(self, weights, imp_cum, gen_cum, genuine_total, impostor_total, far):
        k = (imp_cum / impostor_total[:, None] <= far).sum(axis=1)  # first block past the operating point
        covered = k < imp_cum.shape[1]
        r = np.arange(weights.shape[0])
        kk = np.minimum(k, imp_cum.shape[1] - 1)
        before = kk > 0
        imp_before = np.where(before, imp_cum[r, np.maximum(kk - 1, 0)], 0.0)
        gen_before = np.where(before, gen_cum[r, np.maximum(kk - 1, 0)], 0.0)
        start, stop = self.bounds[kk], self.bounds[kk + 1]
        pos = start[:, None] + np.arange(int((stop - start).max()))[None, :]
        valid = pos < stop[:, None]
        pos = np.minimum(pos, self.n - 1)
        w = np.take_along_axis(weights, self.groups[pos], axis=1) * valid
        gen = self.genuine[pos]
        imp_in = imp_before[:, None] + np.cumsum(w * ~gen, axis=1)
        gen_in = gen_before[:, None] + np.cumsum(w * gen, axis=1)
        ok = valid & self.tie_end[pos] & (imp_in / impostor_total[:, None] <= far)
        last = ok.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
        any_ok = ok.any(axis=1)
        accepted_gen = np.where(any_ok, gen_in[r, last], gen_before)
        accepted_imp = np.where(any_ok, imp_in[r, last], imp_before)
        return accepted_gen / genuine_total, accepted_imp, covered


def _downsample(fpr: np.ndarray, max_points: int, min_fpr: float) -> np.ndarray:
    """Indices of at most ``max_points`` ROC points spread in linear and log FPR (as ``downsample_curve``)."""
    if fpr.size <= max_points:
        return np.arange(fpr.size)
    half = (max_points - 2) // 2
    if half == 0:
        return np.array([0, fpr.size - 1])
    targets = np.r_[np.linspace(0.0, 1.0, half), np.logspace(np.log10(min_fpr), 0.0, half)]
    picks = np.searchsorted(fpr, targets, side="right") - 1
    return np.unique(np.r_[0, picks, fpr.size - 1])


def _roc_curve(tail: tuple, acc: _Pass, n_genuine: int, n_impostor: int, max_points: int) -> list[dict]:
    """Exact ROC points of the tail (every tie group), then the fine-bin points below it, downsampled."""
    scores, genuine, _ = tail
    ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    tps, fps = np.cumsum(genuine)[ends], ends + 1 - np.cumsum(genuine)[ends]
    thresholds = scores[ends].astype(np.float64)
    if fps[-1] < n_impostor or tps[-1] < n_genuine:
        lowest = int(_fine_bins(scores[-1:])[0])
        g = np.cumsum(acc.fine_genuine[:FINE_BINS][::-1])[::-1][: lowest + 1]
        i = np.cumsum((acc.fine_total - acc.fine_genuine)[:FINE_BINS][::-1])[::-1][: lowest + 1]
        edges = -1.0 + np.arange(lowest + 1) * (2.0 / FINE_BINS)
        tps, fps = np.r_[tps, g[::-1]], np.r_[fps, i[::-1]]
        thresholds = np.r_[thresholds, edges[::-1]]
    top = np.nextafter(np.float32(thresholds[0]), np.float32(np.inf))
    fpr, tpr = np.r_[0.0, fps / n_impostor], np.r_[0.0, tps / n_genuine]
    thresholds = np.r_[float(top), thresholds]
    keep = _downsample(fpr, max_points, 1.0 / n_impostor)
    return [{"fpr": float(fpr[i]), "tpr": float(tpr[i]), "threshold": float(thresholds[i])} for i in keep]


# --------------------------------------------------------------------------------------------------
# Public entry point


def _check(topk: Sequence[int], far: Sequence[float]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    ks = tuple(topk)
    if not ks or any(not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1 for k in ks):
        raise LossbenchError(f"topk must be a non-empty list of positive integers (e.g. [1, 5, 10]), got {topk}")
    fars = tuple(float(f) for f in far)
    if not fars or any(not 0.0 < f < 1.0 for f in fars):
        raise LossbenchError(f"far must be a non-empty list of rates in (0, 1) (e.g. [1e-3, 1e-4]), got {far}")
    return tuple(sorted(set(int(k) for k in ks) | set(CHALLENGE_WEIGHTS))), fars


def topk_values(first_hit: np.ndarray, topk: Sequence[int] = (1, 5, 10)) -> dict[str, np.ndarray]:
    """Per-query ``top{k}`` hits (0/1, k in ``topk`` and 1, 5, 10) and challenge ``score`` from each query's
    0-based rank of its first same-label result (as ``lossbench.metrics.ranking.per_query_values``)."""
    ks = sorted(set(int(k) for k in topk) | set(CHALLENGE_WEIGHTS))
    values = {f"top{k}": (np.asarray(first_hit) < k).astype(np.float64) for k in ks}
    values["score"] = sum(weight * values[f"top{k}"] for k, weight in CHALLENGE_WEIGHTS.items())
    return values


def _ranking_values(acc: _Pass, scored: np.ndarray, n_relevant: np.ndarray, ks: tuple[int, ...]) -> dict:
    values = topk_values(acc.first_hit[scored], ks)
    values.update(
        {
            "mAP": acc.ap[scored],
            "map_at_r": acc.ap_at_r[scored],
            "r_precision": acc.hits_at_r[scored] / n_relevant[scored],
        }
    )
    return values


def _verification_replicates(acc: _Pass, tail_roc: _TailRoc, weights: np.ndarray, fars: tuple[float, ...]) -> tuple:
    """Replicates of roc_auc, eer, tar_at_far_* ([B] each), the largest AUC/EER bounds and the binned-TAR count."""
    impostor_hist = acc.group_total - acc.group_genuine
    gen_per_group, imp_per_group = acc.group_genuine.sum(axis=1), impostor_hist.sum(axis=1)
    n_bins = impostor_hist.shape[1]
    out = {key: np.empty(weights.shape[0]) for key in ["roc_auc", "eer", "roc_auc_bound", "eer_bound"]}
    out.update({far_key(f): np.empty(weights.shape[0]) for f in fars})
    from_bins = 0
    step = max(1, _REPLICATE_ELEMENTS // (4 * n_bins))
    for start in range(0, weights.shape[0], step):
        part = slice(start, start + step)
        w = weights[part].astype(np.float64)
        fpr, tpr = _binned_roc(w @ acc.group_genuine, w @ impostor_hist)
        for key, value in _auc_eer(fpr, tpr).items():
            out[key][part] = value
        gen_total, imp_total = w @ gen_per_group, w @ imp_per_group
        valid = (gen_total > 0) & (imp_total > 0)
        for f, (tar, _, covered) in tail_roc.tar(w, gen_total, imp_total, fars).items():
            tar = np.where(covered, tar, _binned_tar(fpr, tpr, f))
            from_bins += int((~covered & valid).sum())
            out[far_key(f)][part] = np.where(valid, tar, np.nan)
    bounds = {
        "roc_auc_replicates": float(np.nanmax(out.pop("roc_auc_bound"))),
        "eer_replicates": float(np.nanmax(out.pop("eer_bound"))),
        "tar_replicates_from_bins": from_bins,
    }
    return out, bounds


def evaluate_streaming(
    query: np.ndarray,
    query_labels: Sequence,
    gallery: np.ndarray | None = None,
    gallery_labels: Sequence | None = None,
    topk: Sequence[int] = (1, 5, 10),
    far: Sequence[float] = (1e-3, 1e-4),
    resamples: int = 2000,
    seed: int = 0,
    weights: np.ndarray | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    max_curve_points: int = 200,
) -> StreamingResult:
    """Ranking and verification metrics with identity-bootstrap replicates in one streaming pass.

    ``gallery=None``: all-vs-all over ``query``. Embeddings are L2-normalised here. ``weights`` [B, Q]
    replaces the identity bootstrap by ``query_labels`` (``resamples``, ``seed``). Keys of ``metrics`` and
    ``replicates`` are those of ``lossbench.evaluation.evaluate_run``; method and error bounds: module docstring.
    """
    ks, fars = _check(topk, far)
    q = _embeddings(query, "query embeddings")
    all_vs_all = gallery is None
    g = q if all_vs_all else _embeddings(gallery, "gallery embeddings")
    if q.shape[1] != g.shape[1]:
        raise LossbenchError(f"query and gallery embeddings differ in dimension ({q.shape[1]} vs {g.shape[1]})")
    ql = _labels(query_labels, q.shape[0], "query labels")
    gl = ql if all_vs_all else _labels(gallery_labels, g.shape[0], "gallery labels")
    _, codes = np.unique(np.concatenate([ql, gl]), return_inverse=True)
    relevant = _Relevant(codes[: q.shape[0]], codes[q.shape[0] :], all_vs_all)
    scored = relevant.n_relevant > 0
    if not scored.any():
        raise LossbenchError("no query has a same-label gallery item: check the labels (or the query/gallery split)")
    if weights is None:
        wg, groups = group_weights(ql, resamples, seed)
    else:
        if np.shape(weights)[1:] != (q.shape[0],):
            raise LossbenchError(f"weights must be [replicates, {q.shape[0]}], got shape {np.shape(weights)}")
        wg, groups = weight_groups(weights)
    n_groups, groups = wg.shape[1], groups.astype(np.int32)  # int32: the tail stores one group per pair

    n_gallery = g.shape[0] - int(all_vs_all)
    n_genuine = int(relevant.n_relevant.sum())
    n_impostor = q.shape[0] * n_gallery - n_genuine
    if n_genuine == 0 or n_impostor == 0:
        raise LossbenchError(f"verification needs genuine and impostor pairs, got {n_genuine} and {n_impostor}")
    target = min(GROUP_BINS[1], max(GROUP_BINS[0], SMALL_CELLS // max(n_groups, 1)))
    shift = int(np.ceil(np.log2(FINE_BINS / target)))
    while n_groups * (FINE_BINS >> shift) > GROUP_CELLS and (FINE_BINS >> shift) > 16:
        shift += 1
    tail_size = int(np.ceil(TAIL_FACTOR * max(fars) * n_impostor)) + TAIL_MARGIN
    acc = _stream(q, g, relevant, groups, n_groups, shift, tail_size, chunk_rows(int(chunk_bytes) // 4, g.shape[0]))

    values = _ranking_values(acc, scored, relevant.n_relevant, ks)
    metrics: dict = {key: float(np.mean(v)) for key, v in values.items()}
    metrics.update(num_queries=int(scored.sum()), num_queries_excluded=int((~scored).sum()))
    fine_gen = acc.fine_genuine[None, :FINE_BINS].astype(np.float64)
    fine_imp = (acc.fine_total - acc.fine_genuine)[None, :FINE_BINS].astype(np.float64)
    point = _auc_eer(*_binned_roc(fine_gen, fine_imp))
    metrics.update(roc_auc=float(point["roc_auc"][0]), eer=float(point["eer"][0]))
    tail = acc.tail.sorted()
    tail_roc = _TailRoc(*tail, n_groups=n_groups)
    ones = np.ones((1, n_groups))
    gen_counts, imp_counts = acc.group_genuine.sum(axis=1), (acc.group_total - acc.group_genuine).sum(axis=1)
    accepted = {}
    for f, (tar, imp, _) in tail_roc.tar(ones, ones @ gen_counts, ones @ imp_counts, fars).items():
        metrics[far_key(f)] = float(tar[0])
        accepted[f] = int(round(float(imp[0])))
    metrics.update(
        num_pairs=q.shape[0] * n_gallery,
        num_genuine_pairs=n_genuine,
        num_impostor_pairs=n_impostor,
        num_identities=int(np.unique(ql[scored]).size),
    )
    metrics.update({f"impostors_above_{far_key(f)}": accepted[f] for f in fars})

    scored_groups = groups[scored]
    replicates = {key: mean_replicates(v, wg, scored_groups) for key, v in values.items()}
    ver, bounds = _verification_replicates(acc, tail_roc, wg, fars)
    replicates.update(ver)
    bounds.update(roc_auc=float(point["roc_auc_bound"][0]), eer=float(point["eer_bound"][0]))
    first_hit = acc.first_hit[scored]
    cmc = [float(np.mean(first_hit < k)) for k in range(1, ks[-1] + 1)]
    roc = _roc_curve(tail, acc, n_genuine, n_impostor, max_curve_points)
    return StreamingResult(metrics, values, replicates, cmc, roc, bounds, scored, wg, scored_groups)
