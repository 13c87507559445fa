"""The identity bootstrap of one run's test metrics: replicate weights, weighted means, weighted verification.

Every loss is trained with S seeds on one fixed identity split and all runs are scored on the same test queries,
so the comparison (:mod:`lossbench.comparison.verdicts`) is paired by test query and by seed. numpy only.

*Two sources of randomness.* A reported number is the mean over S seeds of a metric on the test set. It varies
with training randomness (seeds) and with the test sample (which identities happened to be test identities). The
target is the loss's expected metric over both; this module covers the second.

*What is resampled.* Test sampling is resampled by query *identity*, never by query (queries of one identity are
correlated): a replicate draws the test identities with replacement and weights each query by the number of times
its identity was drawn (:func:`identity_weights`). The gallery stays whole (it is the database searched); in
verification every query–gallery pair carries its query's weight. The same B weight vectors are used for every
loss and seed (they depend only on the query labels, B and the seed), so replicate b is the same test set for
every run.

*Few events.* TAR at FAR f is set by the few impostor pairs above its threshold; :func:`impostors_above` counts
them for the comparison's flag.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lossbench.metrics.catalogue import far_key

_CHUNK_ELEMENTS = 2**21
"""Elements of one working array per replicate chunk (16 MB of float64)."""

_COUNT_ELEMENTS = 2**24
"""Elements of the cached run × query count matrices (128 MB of float64); beyond, blocks are rebuilt."""


# --------------------------------------------------------------------------------------------------
# Identity bootstrap


def identity_weights(groups: Sequence, resamples: int, seed: int) -> np.ndarray:
    """Identity-bootstrap weights ``[resamples, Q]`` (int32): replicate b draws the n distinct
    identities of ``groups`` (one label per query) n times with replacement; query q gets the number
    of times its identity was drawn.

    Invariants: in every row, queries of one identity share one weight, and the per-identity counts
    sum to n (so ``row.sum() == Σ_identity count·queries``, Q on average). The result depends only on
    ``(groups, resamples, seed)``; the first k rows do not depend on ``resamples`` ≥ k.

    Order: identity j is the j-th label of ``np.unique(groups)`` (sorted), and the draws go to
    identities in that order. So the count an identity receives depends on the *set* of labels, not on
    the query order: permuting the queries permutes the columns the same way (column q always belongs
    to query q: pass per-query values in the order of ``groups``). Every stage must pass the same
    identity labels with the same type (names vs codes, int vs str sort differently); adding or
    dropping an identity changes every draw.
    """
    labels = np.asarray(groups)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"groups must be a non-empty 1-D array of identity labels, got shape {labels.shape}")
    if int(resamples) != resamples or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples}")
    _, inverse = np.unique(labels, return_inverse=True)
    n = int(inverse.max()) + 1
    draws = np.random.default_rng(seed).integers(0, n, size=(int(resamples), n))
    offsets = (np.arange(int(resamples)) * n)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=int(resamples) * n).reshape(-1, n)
    return counts.astype(np.int32)[:, inverse.ravel()]


def _as_weights(weights: np.ndarray, n_queries: int) -> np.ndarray:
    w = np.asarray(weights)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] != n_queries:
        raise ValueError(f"weights must be [replicates, {n_queries}] (one column per query), got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and non-negative")
    return w


def mean_replicates(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted means of per-query ``values`` [Q] (or [Q, M]) under every replicate of ``weights``
    [B, Q]: ``[B]`` (or [B, M]). Values must be finite: drop unscored queries (and their labels,
    before :func:`identity_weights`) first."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim not in (1, 2) or v.shape[0] == 0:
        raise ValueError(f"values must be [Q] or [Q, M] per-query metrics, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("values contain NaN or inf: drop unscored queries (and their identity labels) first")
    w = _as_weights(weights, v.shape[0])
    out = np.empty((w.shape[0],) + v.shape[1:])
    step = max(1, _CHUNK_ELEMENTS // v.shape[0])
    for start in range(0, w.shape[0], step):
        chunk = w[start : start + step].astype(np.float64)
        total = chunk.sum(axis=1)
        if (total <= 0).any():
            raise ValueError("a replicate has zero total weight")
        out[start : start + step] = (chunk @ v) / (total if v.ndim == 1 else total[:, None])
    return out


# --------------------------------------------------------------------------------------------------
# Verification under weights


def _check_fars(far: Sequence[float]) -> tuple[float, ...]:
    fars = tuple(float(f) for f in np.atleast_1d(np.asarray(far, dtype=np.float64)))
    if not fars or any(not 0.0 < f < 1.0 for f in fars):
        raise ValueError(f"far must be a non-empty list of rates in (0, 1) (e.g. [1e-3, 1e-4]), got {far}")
    return fars


def _check_pairs(scores: np.ndarray, genuine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores)
    g = np.asarray(genuine)
    if s.ndim != 2 or s.size == 0 or g.shape != s.shape:
        raise ValueError(
            f"scores and genuine must be [queries, gallery] arrays of one shape, got {s.shape} and {g.shape}"
        )
    if g.dtype != np.bool_:
        raise ValueError(f"genuine must be a boolean array, got {g.dtype}")
    if not np.issubdtype(s.dtype, np.floating) or not np.isfinite(s).all():
        raise ValueError("scores must be finite floating-point values")
    return s, g


class _PairRuns:
    """All query–gallery pairs sorted once by descending score and cut into ROC *runs*.

    Pairs with equal scores form one ROC point (a tie group). Consecutive tie groups holding only
    impostors lie on one horizontal ROC segment and consecutive genuine-only groups on one vertical
    segment, under any non-negative pair weights; merging them into a run keeps every vertex of the
    piecewise-linear ROC, so AUC, EER and TAR@FAR are unchanged. A run's weighted genuine (impostor)
    mass is ``weights @ counts`` with ``counts[run, query]`` its genuine (impostor) pairs per query —
    a matrix product per chunk of replicates instead of a pass over all pairs per replicate.
    """

    def __init__(self, scores: np.ndarray, genuine: np.ndarray):
        s, g = _check_pairs(scores, genuine)
        self.n_queries, n_gallery = s.shape
        flat = s.ravel()
        order = np.argsort(-flat, kind="stable")  # order within a tie is irrelevant
        sorted_scores = flat[order]
        self.pair_genuine = g.ravel()[order]
        self.pair_query = (order // n_gallery).astype(np.intp)
        group = np.cumsum(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]]) - 1
        n_groups = int(group[-1]) + 1
        has_genuine = np.bincount(group, weights=self.pair_genuine, minlength=n_groups) > 0
        has_impostor = np.bincount(group, weights=~self.pair_genuine, minlength=n_groups) > 0
        kind = has_genuine.astype(np.int8) + 2 * has_impostor.astype(np.int8)  # 1 gen, 2 imp, 3 mixed
        new_run = np.r_[True, (kind[1:] != kind[:-1]) | (kind[1:] == 3)]
        run_of_group = np.cumsum(new_run) - 1
        self.pair_run = run_of_group[group]
        self.n_runs = int(run_of_group[-1]) + 1
        self.n_genuine = int(self.pair_genuine.sum())
        self.n_impostor = int(self.pair_genuine.size - self.n_genuine)
        # Blocks of consecutive runs (contiguous pair slices) whose count matrices stay bounded.
        runs_per_block = max(1, _COUNT_ELEMENTS // (4 * self.n_queries))
        run_starts = np.searchsorted(self.pair_run, np.arange(0, self.n_runs, runs_per_block))
        bounds = np.r_[run_starts, self.pair_run.size]
        self.blocks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self.cache = len(self.blocks) == 1 or 2 * self.n_runs * self.n_queries <= _COUNT_ELEMENTS
        self._built: dict[int, tuple] = {}

    def _block(self, i: int) -> tuple:
        if i in self._built:
            return self._built[i]
        a, b = self.blocks[i]
        run, query, gen = self.pair_run[a:b], self.pair_query[a:b], self.pair_genuine[a:b]
        first = int(run[0])
        n_runs = int(run[-1]) - first + 1
        cell = (run - first) * self.n_queries + query
        parts = []
        for mask in (gen, ~gen):
            counts = np.bincount(cell[mask], minlength=n_runs * self.n_queries).reshape(n_runs, self.n_queries)
            rows = np.flatnonzero(counts.any(axis=1))
            parts.append((first + rows, counts[rows].astype(np.float64)))
        if self.cache:
            self._built[i] = tuple(parts)
        return tuple(parts)

    def rates(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(fpr, tpr)`` [c, runs + 1] at (0, 0) and every run end for replicate weights [c, Q];
        rows with no genuine or no impostor weight are NaN."""
        c = weights.shape[0]
        genuine = np.zeros((c, self.n_runs + 1))
        impostor = np.zeros((c, self.n_runs + 1))
        for i in range(len(self.blocks)):
            (g_rows, g_counts), (i_rows, i_counts) = self._block(i)
            genuine[:, 1 + g_rows] = weights @ g_counts.T
            impostor[:, 1 + i_rows] = weights @ i_counts.T
        np.cumsum(genuine, axis=1, out=genuine)
        np.cumsum(impostor, axis=1, out=impostor)
        with np.errstate(invalid="ignore", divide="ignore"):
            tpr = genuine / genuine[:, -1:]
            fpr = impostor / impostor[:, -1:]
        bad = (genuine[:, -1] <= 0) | (impostor[:, -1] <= 0)
        tpr[bad] = np.nan
        fpr[bad] = np.nan
        return fpr, tpr


def _roc_metrics(fpr: np.ndarray, tpr: np.ndarray, fars: tuple[float, ...]) -> dict[str, np.ndarray]:
    """ROC-AUC, EER and TAR@FAR of each row of a piecewise-linear ROC (as in the verification metrics)."""
    rows = np.arange(fpr.shape[0])
    bad = np.isnan(fpr[:, 0])
    auc = np.trapezoid(tpr, fpr, axis=1)
    gap = (1.0 - tpr) - fpr  # 1 at (0, 0), −1 at (1, 1), non-increasing
    i = np.argmax(gap <= 0.0, axis=1)
    i[bad] = 1
    now, before = gap[rows, i], gap[rows, i - 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = before / (before - now)
    eer = np.where(now == 0.0, fpr[rows, i], fpr[rows, i - 1] + t * (fpr[rows, i] - fpr[rows, i - 1]))
    out = {"roc_auc": auc, "eer": eer}
    for f in fars:
        idx = np.maximum((fpr <= f).sum(axis=1) - 1, 0)
        out[far_key(f)] = tpr[rows, idx]
    for values in out.values():
        values[bad] = np.nan
    return out


def verification_replicates(
    scores: np.ndarray, genuine: np.ndarray, weights: np.ndarray, far: Sequence[float] = (1e-3, 1e-4)
) -> dict[str, np.ndarray]:
    """``roc_auc``, ``eer`` and ``tar_at_far_{far:.0e}`` per replicate ([B] each) of the pairs
    ``scores`` [Q, G] (genuine [Q, G] bool) when every pair weighs its query's weight (weights
    [B, Q]). With unit weights the values equal ``evaluate_verification`` on the same scores (ties
    form one ROC point; EER interpolated; TAR = highest TPR with FPR ≤ far). A replicate without
    genuine or impostor weight gives NaN. One sort of the pairs, then per chunk of replicates two
    matrix products over ROC runs and cumulative sums (:class:`_PairRuns`)."""
    fars = _check_fars(far)
    runs = _PairRuns(scores, genuine)
    w = _as_weights(weights, runs.n_queries)
    step = max(1, min(w.shape[0], _CHUNK_ELEMENTS // (runs.n_runs + 1)))
    out = {name: np.empty(w.shape[0]) for name in ["roc_auc", "eer"] + [far_key(f) for f in fars]}
    for start in range(0, w.shape[0], step):
        fpr, tpr = runs.rates(w[start : start + step].astype(np.float64))
        for name, values in _roc_metrics(fpr, tpr, fars).items():
            out[name][start : start + step] = values
    return out


def impostors_above(scores: np.ndarray, genuine: np.ndarray, far: Sequence[float] = (1e-3, 1e-4)) -> dict[str, int]:
    """Per ``tar_at_far_*`` key: the impostor pairs accepted (score ≥ threshold) at the unweighted
    operating point that defines TAR@FAR — the last ROC point with FPR ≤ far."""
    fars = _check_fars(far)
    s, g = _check_pairs(scores, genuine)
    impostor = np.sort(s[~g])[::-1]
    if impostor.size == 0:
        raise ValueError("no impostor pairs")
    # The ROC's false-positive counts are 0 and the number of impostors at or above each distinct score.
    ends = np.r_[np.flatnonzero(impostor[1:] != impostor[:-1]) + 1, impostor.size]
    accepted = np.r_[0, ends]
    fpr = accepted / impostor.size
    return {far_key(f): int(accepted[np.searchsorted(fpr, f, side="right") - 1]) for f in fars}
