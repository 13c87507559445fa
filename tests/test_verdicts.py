"""lossbench.comparison.verdicts against independent references: scipy's t intervals, Welch's interval, a
closed-form t quantile, hand-worked variance cases and seeded calibration simulations."""

from __future__ import annotations

import dataclasses
import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats as scipy_stats

from lossbench.comparison.verdicts import (
    detect_multiplier,
    few_events,
    mde,
    resolve_cost,
    summarize,
    typical_difference,
)
from lossbench.evaluation.bootstrap import identity_weights, mean_replicates


def test_few_events():
    assert few_events(3, 10) and not few_events(10, 10) and not few_events(25, 10)


# ------------------------------------------------------------------------------------------------
# summarize: the two variance sources


def _flat(point: np.ndarray, b: int = 50) -> np.ndarray:
    """Replicates without identity variance: every replicate equals the point value."""
    return np.repeat(np.asarray(point, dtype=np.float64)[:, None], b, axis=1)


def test_seed_only_interval_hand_computed():
    """Seeds 1, 2, 3: mean 2, standard error 1/√3, 2 degrees of freedom, where Student's t has the closed form
    t_p = α·√(2 / (1 − α²)) with α = 2p − 1."""
    x = np.array([1.0, 2.0, 3.0])
    for confidence in (0.95, 0.8):
        v = summarize({"x": x}, {"x": _flat(x)}, confidence=confidence)["x"]
        half = confidence * math.sqrt(2.0 / (1.0 - confidence**2)) / math.sqrt(3.0)
        assert (v.low, v.high, v.se, v.dof) == pytest.approx((2.0 - half, 2.0 + half, 1.0 / math.sqrt(3.0), 2.0))
    closed_form = [c * math.sqrt(2.0 / (1.0 - c**2)) for c in (0.95, 0.8)]
    assert closed_form == pytest.approx([4.303, 1.886], abs=5e-4)  # printed t tables: t(0.975, 2), t(0.9, 2)


def test_seed_only_intervals_equal_scipy_t_intervals():
    a, b = np.array([0.71, 0.74, 0.70]), np.array([0.69, 0.66, 0.70, 0.65])
    out = summarize({"a": a, "b": b}, {"a": _flat(a), "b": _flat(b)})
    for name, x in [("a", a), ("b", b)]:
        low, high = scipy_stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=scipy_stats.sem(x))
        assert (out[name].low, out[name].high) == pytest.approx((low, high), rel=1e-10)
        assert out[name].dof == pytest.approx(x.size - 1) and out[name].seeds == x.size
    # unpaired difference (default): Welch's interval on the two seed samples
    se2 = a.var(ddof=1) / 3 + b.var(ddof=1) / 4
    nu = se2**2 / ((a.var(ddof=1) / 3) ** 2 / 2 + (b.var(ddof=1) / 4) ** 2 / 3)
    half = scipy_stats.t.ppf(0.975, nu) * math.sqrt(se2)
    diff = b.mean() - a.mean()
    assert out["a"].best and out["a"].diff == 0.0 and out["a"].tied and out["a"].se_diff == 0.0
    assert (out["b"].se_diff, out["b"].dof_diff) == pytest.approx((math.sqrt(se2), nu), rel=1e-10)
    assert (out["b"].diff_seed_var, out["b"].diff_test_var) == pytest.approx((se2, 0.0), rel=1e-10)
    assert (out["b"].diff, out["b"].diff_low, out["b"].diff_high) == pytest.approx(
        (diff, diff - half, diff + half), rel=1e-10
    )
    # paired seeds: the t interval of the per-seed differences
    c = np.array([0.69, 0.66, 0.70])
    paired = summarize({"a": a, "c": c}, {"a": _flat(a), "c": _flat(c)}, paired_seeds=True, confidence=0.9)
    d = c - a
    low, high = scipy_stats.t.interval(0.9, 2, loc=d.mean(), scale=scipy_stats.sem(d))
    assert (paired["c"].diff_low, paired["c"].diff_high) == pytest.approx((low, high), rel=1e-10)
    with pytest.raises(ValueError, match="paired_seeds"):
        summarize({"a": a, "b": b}, {"a": _flat(a), "b": _flat(b)}, paired_seeds=True)


def test_test_sampling_term_is_the_cross_seed_bootstrap_covariance():
    """Replicates = shared test-set effect + each run's own noise (mutually orthogonal, zero-mean):
    only the shared part counts as test sampling; each run's own noise is already in the seed term."""
    h = np.array(
        [
            [1, 1, 1, 1, 1, 1, 1, 1],
            [1, -1, 1, -1, 1, -1, 1, -1],
            [1, 1, -1, -1, 1, 1, -1, -1],
            [1, -1, -1, 1, 1, -1, -1, 1],
            [1, 1, 1, 1, -1, -1, -1, -1],
        ],
        dtype=np.float64,
    )
    shared, own = 0.02 * h[1], 0.05 * h[2:5]
    point = np.array([0.60, 0.63, 0.62])
    reps = point[:, None] + shared[None, :] + own
    v = summarize({"x": point}, {"x": reps})["x"]
    test_var = shared.var(ddof=1)
    assert v.se**2 == pytest.approx(point.var(ddof=1) / 3 + test_var, rel=1e-12)
    with_n = summarize({"x": point}, {"x": reps}, identities=20)["x"]
    assert with_n.se**2 == pytest.approx(point.var(ddof=1) / 3 + test_var * 20 / 19, rel=1e-12)
    seed_term = point.var(ddof=1) / 3
    nu = with_n.se**4 / (seed_term**2 / 2 + (test_var * 20 / 19) ** 2 / 19)
    assert with_n.dof == pytest.approx(nu, rel=1e-12)


def test_single_seed_covers_test_sampling_only():
    rng = np.random.default_rng(4)
    reps = 0.5 + 0.03 * rng.normal(size=(1, 400))
    v = summarize({"x": [0.5]}, {"x": reps})["x"]
    z = NormalDist().inv_cdf(0.975)
    assert v.test_sampling_only and v.seeds == 1 and math.isinf(v.dof)
    assert (v.low, v.high) == pytest.approx((0.5 - z * reps.std(ddof=1), 0.5 + z * reps.std(ddof=1)), rel=1e-12)


def test_best_ties_p_first_and_lower_is_better():
    rng = np.random.default_rng(5)
    test_effect = 0.01 * rng.normal(size=300)  # shared by all losses: cancels in differences
    make = lambda mu, sd: (
        mu + sd * np.array([-1.0, 0.0, 1.0]),
        mu + sd * np.array([-1.0, 0.0, 1.0])[:, None] + test_effect + 0.002 * rng.normal(size=(3, 300)),
    )
    best_p, best_r = make(0.80, 0.005)
    worse_p, worse_r = make(0.70, 0.005)
    out = summarize({"worse": worse_p, "best": best_p}, {"worse": worse_r, "best": best_r})
    assert out["best"].best and out["best"].p_first == 1.0 and out["best"].tied
    assert not out["worse"].best and not out["worse"].tied and out["worse"].p_first == 0.0
    assert out["worse"].diff == pytest.approx(-0.10) and out["worse"].diff_high < 0
    assert out["best"].low < 0.80 < out["best"].high

    # an exact copy of the best is tied with it (difference 0) and shares first place
    out = summarize(
        {"best": best_p, "copy": best_p.copy(), "worse": worse_p},
        {"best": best_r, "copy": best_r.copy(), "worse": worse_r},
        paired_seeds=True,
    )
    assert out["best"].best and not out["copy"].best
    assert out["copy"].tied and out["copy"].diff == 0.0 and out["copy"].diff_low <= 0.0 <= out["copy"].diff_high
    assert out["best"].p_first == pytest.approx(0.5) and out["copy"].p_first == pytest.approx(0.5)
    assert sum(v.p_first for v in out.values()) == pytest.approx(1.0)

    # lower is better (EER): the lowest mean is best, differences are positive
    out = summarize(
        {"low_eer": 1 - best_p, "high_eer": 1 - worse_p},
        {"low_eer": 1 - best_r, "high_eer": 1 - worse_r},
        higher_is_better=False,
    )
    assert out["low_eer"].best and out["low_eer"].p_first == 1.0
    assert out["high_eer"].diff == pytest.approx(0.10) and out["high_eer"].diff_low > 0 and not out["high_eer"].tied


# ------------------------------------------------------------------------------------------------
# calibration: identity-level and seed-level noise, S = 3, 50 identities × 6 queries

N_IDS, PER_ID, SEEDS, RESAMPLES = 50, 6, 3, 200
SD = {"identity": 0.15, "identity_loss": 0.05, "query": 0.2, "seed": 0.01, "seed_query": 0.3}
"""Metric units (e.g. top-1 as a fraction): identity difficulty shared by all losses, the loss-specific
part of it, query difficulty, the seed's overall shift, and each run's own per-query noise (0/1 hits
flip between seeds; this noise dominates the seed-to-seed spread, about 2 points)."""


def _trial(trial: int, means: dict[str, float], **kwargs) -> dict:
    rng = np.random.default_rng([2024, trial])
    groups = np.repeat(np.arange(N_IDS), PER_ID)
    common = rng.normal(0, SD["identity"], N_IDS)[groups] + rng.normal(0, SD["query"], groups.size)
    weights = identity_weights(groups, RESAMPLES, seed=trial)
    point, reps = {}, {}
    for name, mu in means.items():
        per_query = (
            mu
            + common
            + rng.normal(0, SD["identity_loss"], N_IDS)[groups]
            + rng.normal(0, SD["seed"], (SEEDS, 1))
            + rng.normal(0, SD["seed_query"], (SEEDS, groups.size))
        )
        point[name] = per_query.mean(axis=1)
        reps[name] = mean_replicates(per_query.T, weights).T
    return summarize(point, reps, identities=N_IDS, seed=trial, **kwargs)


def test_calibration_no_true_difference():
    trials = [_trial(t, {"a": 0.7, "b": 0.7}) for t in range(400)]
    false_difference = np.mean([not (v["a"].tied and v["b"].tied) for v in trials])
    coverage = np.mean([v["a"].low <= 0.7 <= v["a"].high for v in trials])
    assert 0.02 <= false_difference <= 0.09, false_difference
    assert 0.90 <= coverage <= 0.98, coverage
    assert 0.3 < np.mean([v["a"].p_first for v in trials]) < 0.7


def test_calibration_paired_seeds_mode_is_somewhat_liberal():
    """Pairing seeds by index leaves S − 1 = 2 degrees of freedom for the seed term; Welch–Satterthwaite
    is then known to run above nominal when both sources are comparable (documented: 8–10%)."""
    trials = [_trial(1000 + t, {"a": 0.7, "b": 0.7}, paired_seeds=True) for t in range(300)]
    assert 0.03 <= np.mean([not (v["a"].tied and v["b"].tied) for v in trials]) <= 0.12


def test_calibration_planted_difference_is_found():
    """A loss 8 points better (about 4× the seed-to-seed spread of one run) is found in most trials."""
    trials = [_trial(2000 + t, {"a": 0.70, "c": 0.78}) for t in range(200)]
    found = np.mean([v["c"].best and not v["a"].tied for v in trials])
    assert found > 0.8, found
    assert np.mean([v["c"].p_first for v in trials]) > 0.9


# ------------------------------------------------------------------------------------------------
# what the study can detect


def test_difference_variance_components_add_up_to_its_interval():
    """With both sources present: se_diff² = seed term + test term, and the interval is ± t_ν·se_diff."""
    out = _trial(8, {"a": 0.70, "b": 0.72, "c": 0.71})  # a trial where no test term is clipped at 0
    for v in (out[n] for n in "abc" if not out[n].best):
        assert v.diff_seed_var > 0 and v.diff_test_var > 0
        assert v.se_diff**2 == pytest.approx(v.diff_seed_var + v.diff_test_var, rel=1e-12)
        half = scipy_stats.t.ppf(0.975, v.dof_diff) * v.se_diff
        assert (v.diff_low, v.diff_high) == pytest.approx((v.diff - half, v.diff + half), rel=1e-10)
        assert 2.0 <= v.dof_diff <= 2 * (SEEDS - 1) + N_IDS - 1  # Welch–Satterthwaite: within its terms' sum


def test_mde_hand_computed():
    """(t_{ν,0.975} + t_{ν,0.8})·SE: normal quantiles 1.959964 + 0.841621 for ν = ∞; with ν = 2 the closed form
    t_p = α·√(2 / (1 − α²)), α = 2p − 1: 4.302653 + 1.060660."""
    assert mde(2.0, math.inf) == pytest.approx(2.0 * (1.959964 + 0.841621), abs=1e-5)
    closed = lambda p: (2 * p - 1) * math.sqrt(2.0 / (1.0 - (2 * p - 1) ** 2))  # noqa: E731
    assert mde(1.5, 2.0) == pytest.approx(1.5 * (closed(0.975) + closed(0.8)), rel=1e-9)
    assert 1.5 * (closed(0.975) + closed(0.8)) == pytest.approx(1.5 * 5.363313, abs=1e-5)
    assert detect_multiplier(math.inf, confidence=0.9, power=0.5) == pytest.approx(1.644854, abs=1e-6)
    with pytest.raises(ValueError, match="power"):
        mde(1.0, 5.0, power=1.0)


def test_resolve_cost_hand_computed():
    """Seed term 8 at S = 3, test term 4, multiplier 2: detecting 6 needs variance (6/2)² = 9, i.e.
    3·8/(9 − 4) = 4.8 seeds at the current test set, or 4/(9 − 8) = 4× the identities at 3 seeds."""
    cost = resolve_cost(6.0, seed_var=8.0, test_var=4.0, seeds=3, multiplier=2.0)
    assert (cost.seeds, cost.identities_factor) == pytest.approx((4.8, 4.0))
    partial = resolve_cost(5.0, seed_var=8.0, test_var=4.0, seeds=3, multiplier=2.0)  # needs 6.25 < 8
    assert partial.seeds == pytest.approx(3 * 8 / 2.25) and partial.identities_factor is None
    unreachable = resolve_cost(3.0, seed_var=8.0, test_var=4.0, seeds=3, multiplier=2.0)  # 2.25 < 4 < 8
    assert unreachable.seeds is None and unreachable.identities_factor is None


def test_typical_difference_is_the_median_se_among_the_others():
    base = _trial(8, {"a": 0.70})["a"]
    make = lambda se, best=False: dataclasses.replace(base, se_diff=se, best=best)  # noqa: E731
    odd = {"best": make(0.0, best=True), "x": make(3.0), "y": make(1.0), "z": make(2.0)}
    assert typical_difference(odd).se_diff == 2.0
    even = {"best": make(0.0, best=True), "x": make(3.0), "y": make(1.0), "z": make(2.0), "w": make(4.0)}
    assert typical_difference(even).se_diff == 2.0  # the lower median
    assert typical_difference({"best": make(0.0, best=True)}) is None
