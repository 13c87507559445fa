"""Verdicts with uncertainty: seed variance plus the identity bootstrap, paired differences, rank stability.

Input: per loss, the metric of each of S seeds on the full test set and on B identity replicates (the same b for
every loss and seed: :mod:`lossbench.evaluation.bootstrap`).

*Combining the two sources.* For runs X_s (seed s = 1..S; point value on the full test set p_s, replicate values
X_s[b]) the variance of the seed mean is estimated as

    V = var_s(p) / S  +  C,   C = mean over pairs s≠t of cov_b(X_s, X_t)

The first term (sample variance over seeds, S−1 degrees of freedom) is training randomness, including the
seed-specific per-query noise of each run. C is the test-sampling variance of the metric averaged over infinitely
many seeds: the bootstrap covariance between *different* seeds keeps the part of the test-set variation the runs
share and drops each run's own per-query noise, which the seed term already counts (the plain bootstrap variance
of the seed mean would count it twice). C is clipped at 0; with ``identities`` = n given, C is scaled by n/(n−1)
(the identity bootstrap's small-sample bias) and gets n−1 degrees of freedom, else infinitely many. The interval
is mean ± t_ν·√V with the Welch–Satterthwaite ν = V² / [ (var_s(p)/S)²/(S−1) + C²/ν_C ]. With S = 1 there is no
seed term (C falls back to the bootstrap variance of the single run): the interval covers test sampling only and
the verdict says so (``test_sampling_only``; a difference then lacks that loss's seed term too).

*Paired differences.* Each loss is compared with the best loss (best mean over seeds; lowest when lower is better,
e.g. EER) on the same replicates: Z_s[b] = X_{loss,s}[b] − X_{best,s}[b]. The test term is the cross-seed
bootstrap covariance of Z (identity effects shared by the two losses cancel, which is what makes the comparison
sharper than the two intervals). The seed term is, by default (``paired_seeds=False``),
var_s(p_loss)/S_loss + var_s(p_best)/S_best, each with S−1 degrees of freedom in the Welch–Satterthwaite sum
(about 2(S−1) in all): valid for independent runs and conservative when runs with the same seed index are
positively correlated (in this pipeline they share backbone init, batch order and augmentation).
``paired_seeds=True`` uses var_s(Z)/S instead (seed index s is the pairing unit; needs equal S): tighter when
same-seed runs are strongly correlated, but with only S−1 = 2 degrees of freedom the Welch–Satterthwaite interval
is then somewhat liberal (8–10% instead of 5% false differences in our simulations, against 4–5% by default).
A loss is *tied* with the best when its difference interval contains 0; the best is tied with itself
(difference 0, interval [0, 0]).

*Rank stability.* ``p_first`` is the share of B joint resamples — identity replicate b plus the S seeds drawn
with replacement (the same seed indices for every loss when seeds are paired) — in which the loss has the best
seed-averaged value; exact ties share the resample. It is descriptive (with S = 3 a seed resample has ten
distinct outcomes); ``tied`` is the calibrated statement.

*What the study can detect.* :func:`mde` is the minimum detectable effect of a paired difference, with power
``power`` at level 1 − ``confidence`` (two-sided): (t_{ν, 1−α/2} + t_{ν, power})·SE_diff, with Student's t at the
Welch–Satterthwaite ν of the difference, as the tie intervals use. :func:`typical_difference` picks the study's
typical difference of a metric (the median SE_diff over the losses other than the best) and :func:`resolve_cost`
what resolving a given difference would take: the seed term of the difference's variance scales as 1/S, the
test-sampling term as 1/n_identities, each changed alone.

*Few events.* A TAR@FAR value resting on fewer than ``min_events`` impostor pairs above its threshold
(``impostors_above`` of the bootstrap module, :func:`few_events`) is flagged, not ranked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import t as student_t


def few_events(impostors_above: int, min_events: int) -> bool:
    """True when a TAR@FAR value rests on fewer than ``min_events`` impostor pairs above its threshold
    (flag it; do not rank or bold it)."""
    return int(impostors_above) < int(min_events)


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
    se_diff: float = 0.0  # standard error of the paired difference (0 for the best)
    dof_diff: float = math.inf  # its Welch–Satterthwaite degrees of freedom
    diff_seed_var: float = 0.0  # the seed term of the difference's variance (∝ 1/S)
    diff_test_var: float = 0.0  # its test-sampling term (∝ 1/n_identities)

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
    half = float(student_t.ppf(0.5 + confidence / 2.0, dof)) * se if se > 0 else 0.0
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
        diff_seed = diff_test_var = se_diff = 0.0
        dof_diff = math.inf
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
            diff_test_var = scale * max(diff_test, 0.0)
            diff_seed = sum(v for v, size in seed_terms if size > 1)
            diff_low, diff_high, se_diff, dof_diff = _interval(diff, seed_terms, diff_test_var, test_dof, confidence)
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
            se_diff=se_diff,
            dof_diff=dof_diff,
            diff_seed_var=diff_seed,
            diff_test_var=diff_test_var,
        )
    return out


# --------------------------------------------------------------------------------------------------
# What the study can detect


def detect_multiplier(dof: float, confidence: float = 0.95, power: float = 0.8) -> float:
    """t_{ν, (1+confidence)/2} + t_{ν, power}: the minimum detectable effect in standard errors."""
    if not (0.0 < confidence < 1.0 and 0.0 < power < 1.0):
        raise ValueError(f"confidence and power must be in (0, 1), got {confidence} and {power}")
    return float(student_t.ppf(0.5 + confidence / 2.0, dof) + student_t.ppf(power, dof))


def mde(se_diff: float, dof: float, confidence: float = 0.95, power: float = 0.8) -> float:
    """Smallest paired difference detected with probability ``power`` at level 1 − ``confidence`` (two-sided)."""
    return detect_multiplier(dof, confidence, power) * se_diff


def typical_difference(verdicts: Mapping[str, Verdict]) -> Verdict | None:
    """The verdict with the median ``se_diff`` among the losses other than the best (the lower median for an even
    count); None when only the best exists."""
    others = sorted((v for v in verdicts.values() if not v.best), key=lambda v: v.se_diff)
    return others[(len(others) - 1) // 2] if others else None


@dataclass(frozen=True)
class ResolveCost:
    """What detecting ``delta`` would take, each change alone (None: not reachable that way)."""

    seeds: float | None  # seeds per loss at the current test set
    identities_factor: float | None  # test identities as a multiple of the current ones, at the current seeds


def resolve_cost(delta: float, seed_var: float, test_var: float, seeds: int, multiplier: float) -> ResolveCost:
    """Seeds, or test identities, needed for a paired difference of ``delta`` to be detected: its variance must fall
    to (delta / multiplier)², from ``seed_var`` (the seed term at ``seeds`` seeds, ∝ 1/S) + ``test_var`` (the
    test-sampling term at the current identities, ∝ 1/n). ``multiplier``: :func:`detect_multiplier` at the current
    degrees of freedom (conservative: more seeds or identities raise them)."""
    target = (delta / multiplier) ** 2
    more_seeds = seeds * seed_var / (target - test_var) if target > test_var else None
    more_ids = test_var / (target - seed_var) if target > seed_var else None
    return ResolveCost(more_seeds, more_ids)
