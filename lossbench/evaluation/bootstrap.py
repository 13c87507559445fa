"""Verdicts with uncertainty: identity bootstrap, seed variance, paired differences, rank stability.

Every loss is trained with S seeds on one fixed identity split and all runs are scored on the same
test queries, so the comparison is paired twice: by test query and by seed. numpy only.

Method (what the report's intervals mean)
-----------------------------------------
*Two sources of randomness.* A reported number is the mean over S seeds of a metric on the test set.
It varies with training randomness (seeds) and with the test sample (which identities happened to be
test identities). The target is the loss's expected metric over both.

*What is resampled.* Test sampling is resampled by query *identity*, never by query (queries of one
identity are correlated): a replicate draws the test identities with replacement and weights each
query by the number of times its identity was drawn (:func:`identity_weights`). The gallery stays
whole (it is the database searched); in verification every query–gallery pair carries its query's
weight. The same B weight vectors are used for every loss and seed (they depend only on the query
labels, B and the seed), so replicate b is the same test set for every run.

*Combining the two sources.* For runs X_s (seed s = 1..S; point value on the full test set p_s,
replicate values X_s[b]) the variance of the seed mean is estimated as

    V = var_s(p) / S  +  C,   C = mean over pairs s≠t of cov_b(X_s, X_t)

The first term (sample variance over seeds, S−1 degrees of freedom) is training randomness, including
the seed-specific per-query noise of each run. C is the test-sampling variance of the metric averaged
over infinitely many seeds: the bootstrap covariance between *different* seeds keeps the part of the
test-set variation the runs share and drops each run's own per-query noise, which the seed term
already counts (the plain bootstrap variance of the seed mean would count it twice). C is clipped at
0; with ``identities`` = n given, C is scaled by n/(n−1) (the identity bootstrap's small-sample bias)
and gets n−1 degrees of freedom, else infinitely many. The interval is mean ± t_ν·√V with the
Welch–Satterthwaite ν = V² / [ (var_s(p)/S)²/(S−1) + C²/ν_C ]. With S = 1 there is no seed term
(C falls back to the bootstrap variance of the single run): the interval covers test sampling only and
the verdict says so (``test_sampling_only``; a difference then lacks that loss's seed term too).

*Paired differences.* Each loss is compared with the best loss (best mean over seeds; lowest when
lower is better, e.g. EER) on the same replicates: Z_s[b] = X_{loss,s}[b] − X_{best,s}[b]. The test
term is the cross-seed bootstrap covariance of Z (identity effects shared by the two losses cancel,
which is what makes the comparison sharper than the two intervals). The seed term is, by default
(``paired_seeds=False``), var_s(p_loss)/S_loss + var_s(p_best)/S_best, each with S−1 degrees of
freedom in the Welch–Satterthwaite sum (about 2(S−1) in all): valid for independent runs and
conservative when runs with the same seed index are positively correlated (in this pipeline they
share backbone init, batch order and augmentation). ``paired_seeds=True`` uses var_s(Z)/S instead
(seed index s is the pairing unit; needs equal S): tighter when same-seed runs are strongly
correlated, but with only S−1 = 2 degrees of freedom the Welch–Satterthwaite interval is then
somewhat liberal (8–10% instead of 5% false differences in our simulations, against 4–5% by default).
A loss is *tied* with the best when its difference interval contains 0; the best is tied with itself
(difference 0, interval [0, 0]).

*Rank stability.* ``p_first`` is the share of B joint resamples — identity replicate b plus the S
seeds drawn with replacement (the same seed indices for every loss when seeds are paired) — in which
the loss has the best seed-averaged value; exact ties share the resample. It is descriptive (with
S = 3 a seed resample has ten distinct outcomes); ``tied`` is the calibrated statement.

*Few events.* TAR at FAR f is set by the few impostor pairs above its threshold; a value resting on
fewer than ``min_events`` of them (:func:`impostors_above`, :func:`few_events`) is flagged, not ranked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

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


def far_key(far: float) -> str:
    """Metric name of TAR at FAR ``far`` (e.g. ``tar_at_far_1e-03``), as in the verification metrics."""
    return f"tar_at_far_{far:.0e}"


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


def few_events(impostors_above: int, min_events: int) -> bool:
    """True when a TAR@FAR value rests on fewer than ``min_events`` impostor pairs above its threshold
    (flag it; do not rank or bold it)."""
    return int(impostors_above) < int(min_events)


# --------------------------------------------------------------------------------------------------
# Student t quantiles (numpy only: continued fraction of the regularised incomplete beta function)


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        for aa in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            break
    return h


def _t_sf(t: float, df: float) -> float:
    """P(T > t) for t ≥ 0."""
    x, y = df / (df + t * t), t * t / (df + t * t)  # x + y = 1, each accurate
    a, b = df / 2.0, 0.5
    if y == 0.0:
        return 0.5
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    if x < (a + 1.0) / (a + b + 2.0):
        return 0.5 * math.exp(log_front) * _beta_cf(a, b, x) / a
    return 0.5 * (1.0 - math.exp(log_front) * _beta_cf(b, a, y) / b)


def _t_pdf(t: float, df: float) -> float:
    return math.exp(
        math.lgamma((df + 1) / 2)
        - math.lgamma(df / 2)
        - 0.5 * math.log(df * math.pi)
        - (df + 1) / 2 * math.log1p(t * t / df)
    )


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t with ``df`` > 0 (possibly fractional or inf) degrees of freedom."""
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"need 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    z = NormalDist().inv_cdf(p)
    if df >= 2000:  # Cornish–Fisher expansion (Abramowitz & Stegun 26.7.5), accurate to ~1e-13 here
        z2 = z * z
        terms = (
            (z2 + 1) * z / 4,
            ((5 * z2 + 16) * z2 + 3) * z / 96,
            (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384,
            ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160,
        )
        return z + sum(g / df ** (k + 1) for k, g in enumerate(terms))
    q, log_q = 1.0 - p, math.log1p(-p)
    lo, hi = z, max(z, 1.0) * 2.0  # the t quantile is above the normal one
    while _t_sf(hi, df) > q:
        lo, hi = hi, hi * 4.0
    t = min(max(z + (z**3 + z) / (4 * df), lo), hi)
    for _ in range(200):
        sf = _t_sf(t, df)
        if sf > q:
            lo = t
        else:
            hi = t
        # Newton step on log P(T > t) against log t: nearly linear in both the normal and Cauchy tails
        step = (math.log(sf) - log_q) / (t * _t_pdf(t, df) / sf)
        new = t * math.exp(step)
        if not lo < new < hi:
            new = math.sqrt(lo * hi)
        if abs(new - t) <= 1e-15 * t:
            return new
        t = new
    return t


# --------------------------------------------------------------------------------------------------
# Combination across seeds and losses


@dataclass(frozen=True)
class Verdict:
    """One loss's metric with its uncertainty (see the module docstring for the method)."""

    mean: float  # mean over seeds of the full-test-set metric
    low: float  # confidence interval of the mean: training randomness + identity sampling
    high: float
    se: float  # standard error behind the interval (√V)
    dof: float  # Welch–Satterthwaite degrees of freedom of the interval
    diff: float  # mean − best loss's mean (0 for the best itself)
    diff_low: float  # confidence interval of the paired difference
    diff_high: float
    tied: bool  # the difference interval contains 0 (or this is the best)
    best: bool  # best mean (max, or min when lower is better)
    p_first: float  # share of joint resamples where this loss ranks first
    seeds: int  # S
    test_sampling_only: bool  # S == 1: no seed variance, the intervals cover test sampling only

    def as_dict(self) -> dict:
        return asdict(self)


def _cross_cov(a: np.ndarray, b: np.ndarray) -> float:
    """Mean bootstrap covariance over run pairs (s, t) with s ≠ t (all pairs if none exist)."""
    a0 = a - a.mean(axis=1, keepdims=True)
    b0 = b - b.mean(axis=1, keepdims=True)
    cov = a0 @ b0.T / (a.shape[1] - 1)
    off = ~np.eye(cov.shape[0], cov.shape[1], dtype=bool)
    return float(cov[off].mean() if off.any() else cov.mean())


def _interval(
    center: float, seed_terms: Sequence[tuple[float, int]], test_var: float, test_dof: float, confidence: float
) -> tuple[float, float, float, float]:
    """``(low, high, se, dof)`` for variance Σ seed terms (variance of a mean, S−1 dof) + test_var."""
    terms = [(v, s - 1) for v, s in seed_terms if s > 1] + [(max(test_var, 0.0), test_dof)]
    total = sum(v for v, _ in terms)
    denom = sum(v * v / d for v, d in terms if v > 0 and not math.isinf(d))
    dof = total * total / denom if denom > 0 else math.inf
    se = math.sqrt(total)
    half = t_quantile(0.5 + confidence / 2.0, dof) * se if se > 0 else 0.0
    return center - half, center + half, se, dof


def summarize(
    point: Mapping[str, Sequence[float]],
    replicates: Mapping[str, np.ndarray],
    confidence: float = 0.95,
    higher_is_better: bool = True,
    paired_seeds: bool = False,
    identities: int | None = None,
    seed: int = 0,
) -> dict[str, Verdict]:
    """Verdicts per loss from ``point[loss]`` [S] (metric per seed on the full test set) and
    ``replicates[loss]`` [S, B] (the same on identity replicate b; the same b weights for every loss
    and seed). ``higher_is_better=False`` for EER. ``identities``: number of test identities
    (small-sample correction and degrees of freedom of the test-sampling term; None = treat it as
    known). ``paired_seeds``: seed index s of every loss is one pairing unit (needs equal S; default:
    runs of different losses are independent). ``seed``: seeds the resampling behind ``p_first``.
    Replicates that are not finite for some loss and seed (e.g. a verification replicate without
    genuine pairs) are dropped for all. Method: module docstring."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not point or set(point) != set(replicates):
        raise ValueError("point and replicates must name the same, non-empty set of losses")
    if identities is not None and identities < 2:
        raise ValueError(f"identities must be at least 2, got {identities}")
    names = list(point)
    p = {n: np.asarray(point[n], dtype=np.float64).ravel() for n in names}
    x = {n: np.asarray(replicates[n], dtype=np.float64) for n in names}
    b_count = x[names[0]].shape[-1] if x[names[0]].ndim == 2 else -1
    for n in names:
        if p[n].size == 0 or x[n].shape != (p[n].size, b_count) or b_count < 2:
            raise ValueError(
                f"{n}: point must be [S] and replicates [S, B] with one B ≥ 2 for every loss, "
                f"got {p[n].shape} and {x[n].shape}"
            )
        if not np.isfinite(p[n]).all():
            raise ValueError(f"{n}: point values must be finite")
    if paired_seeds and len({p[n].size for n in names}) > 1:
        raise ValueError("paired_seeds needs the same number of seeds for every loss; use paired_seeds=False")
    keep = np.logical_and.reduce([np.isfinite(x[n]).all(axis=0) for n in names])
    if keep.sum() < 2:
        raise ValueError("fewer than 2 replicates are finite for every loss and seed")
    x = {n: x[n][:, keep] for n in names}
    scale = 1.0 if identities is None else identities / (identities - 1.0)
    test_dof = math.inf if identities is None else identities - 1.0
    sign = 1.0 if higher_is_better else -1.0

    means = {n: float(p[n].mean()) for n in names}
    best = max(names, key=lambda n: sign * means[n])  # the first of exact ties

    def seed_var(values: np.ndarray) -> float:
        return float(values.var(ddof=1)) / values.size if values.size > 1 else 0.0

    # Rank stability: identity replicate b joined with a resample of the seeds (per loss, or shared).
    rng = np.random.default_rng(seed)
    cols = np.arange(x[best].shape[1])
    shared = rng.integers(0, p[best].size, size=(cols.size, p[best].size)) if paired_seeds else None
    joint = np.stack(
        [
            x[n][
                shared if paired_seeds else rng.integers(0, p[n].size, size=(cols.size, p[n].size)), cols[:, None]
            ].mean(axis=1)
            for n in names
        ]
    )
    ranked = sign * joint
    top = ranked == ranked.max(axis=0, keepdims=True)
    p_first = (top / top.sum(axis=0, keepdims=True)).mean(axis=1)

    out = {}
    for k, n in enumerate(names):
        s = p[n].size
        test_var = scale * max(_cross_cov(x[n], x[n]), 0.0)
        low, high, se, dof = _interval(means[n], [(seed_var(p[n]), s)], test_var, test_dof, confidence)
        if n == best:
            diff = diff_low = diff_high = 0.0
        else:
            diff = means[n] - means[best]
            if paired_seeds:
                z, zp = x[n] - x[best], p[n] - p[best]
                seed_terms = [(seed_var(zp), s)]
                diff_test = _cross_cov(z, z)
            else:
                seed_terms = [(seed_var(p[n]), s), (seed_var(p[best]), p[best].size)]
                diff_test = _cross_cov(x[n], x[n]) + _cross_cov(x[best], x[best]) - 2.0 * _cross_cov(x[n], x[best])
            diff_low, diff_high, _, _ = _interval(diff, seed_terms, scale * max(diff_test, 0.0), test_dof, confidence)
        out[n] = Verdict(
            mean=means[n],
            low=low,
            high=high,
            se=se,
            dof=dof,
            diff=diff,
            diff_low=diff_low,
            diff_high=diff_high,
            tied=bool(n == best or diff_low <= 0.0 <= diff_high),
            best=n == best,
            p_first=float(p_first[k]),
            seeds=s,
            test_sampling_only=s == 1,
        )
    return out
