"""lossbench.evaluation.bootstrap against independent references: scikit-learn, the verification metrics on
explicitly duplicated queries and hand-worked cases."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import lossbench.evaluation.bootstrap as st
from lossbench.evaluation.bootstrap import identity_weights, impostors_above, mean_replicates, verification_replicates
from lossbench.metrics import verification as ver

FARS = (1e-1, 1e-2, 1e-3)


# ------------------------------------------------------------------------------------------------
# identity_weights


def test_identity_weights_resample_whole_identities():
    groups = np.array(["b", "a", "c", "a", "b", "b", "d"])
    w = identity_weights(groups, 500, seed=3)
    assert w.shape == (500, 7) and np.issubdtype(w.dtype, np.integer)
    ids, first = np.unique(groups, return_index=True)
    per_id = w[:, first]  # one column per identity
    # invariant: the counts of the n identities sum to n in every replicate ...
    assert (per_id.sum(axis=1) == ids.size).all()
    # ... queries of one identity share its count (whole groups), so a row sums to Σ count · size
    for label, col in zip(ids, first):
        assert (w[:, groups == label] == w[:, [col]]).all()
    sizes = np.array([(groups == label).sum() for label in ids])
    assert (w.sum(axis=1) == per_id @ sizes).all()
    # each identity's count is Binomial(n, 1/n): mean 1; the row sums average Q
    assert np.allclose(per_id.mean(axis=0), 1.0, atol=0.15)
    assert abs(w.sum(axis=1).mean() - groups.size) < 0.3


def test_identity_weights_depend_only_on_labels_resamples_and_seed():
    rng = np.random.default_rng(0)
    groups = rng.integers(100, 140, size=120)
    w = identity_weights(groups, 64, seed=11)
    assert (w == identity_weights(groups.tolist(), 64, seed=11)).all()  # any stage, any container
    assert not (w == identity_weights(groups, 64, seed=12)).all()
    assert (w[:20] == identity_weights(groups, 20, seed=11)).all()  # more resamples extend the same draws
    perm = rng.permutation(groups.size)  # another query order: the same weight per query
    assert (identity_weights(groups[perm], 64, seed=11) == w[:, perm]).all()


def test_identity_weights_reject_bad_input():
    with pytest.raises(ValueError):
        identity_weights(np.array([]), 10, 0)
    with pytest.raises(ValueError):
        identity_weights(np.array([1, 2]), 0, 0)


# ------------------------------------------------------------------------------------------------
# mean_replicates


def test_mean_replicates_hand_case_and_loop():
    values = np.array([1.0, 0.0, 1.0, 1.0])
    weights = np.array([[1, 1, 0, 0], [2, 0, 0, 1], [0, 0, 3, 3], [1, 1, 1, 1]])
    assert np.allclose(mean_replicates(values, weights), [0.5, 1.0, 1.0, 0.75])

    rng = np.random.default_rng(1)
    groups = rng.integers(0, 30, size=200)
    w = identity_weights(groups, 50, seed=0)
    v = rng.normal(size=(200, 3))  # several metrics at once
    loop = np.array([[np.average(v[:, m], weights=row) for m in range(3)] for row in w])
    assert np.allclose(mean_replicates(v, w), loop)
    assert np.allclose(mean_replicates(v[:, 0], w), loop[:, 0])
    with pytest.raises(ValueError, match="NaN"):
        mean_replicates(np.r_[np.nan, v[1:, 0]], w)


# ------------------------------------------------------------------------------------------------
# verification


def _reference(scores: np.ndarray, genuine: np.ndarray, fars=FARS) -> dict:
    """Unweighted verification metrics of the given pairs with the project's own ROC functions."""
    fpr, tpr, _ = ver.roc_points(scores.ravel(), genuine.ravel())
    out = {"roc_auc": float(np.trapezoid(tpr, fpr)), "eer": ver.equal_error_rate(fpr, tpr)}
    out.update({ver.far_key(f): ver.tar_at_far(fpr, tpr, f) for f in fars})
    return out


def _dyadic_split(seed: int = 0, ids: int = 12, dim: int = 64):
    """Embeddings with entries ±1/8 (unit norm exactly): every cosine is an exact multiple of 1/64
    whatever the summation order, so scores computed here equal evaluate_verification's bit for bit
    (and many tie)."""
    rng = np.random.default_rng(seed)
    centres = rng.choice([-1.0, 1.0], size=(ids, dim))
    q_labels = np.repeat(np.arange(ids), 5)
    g_labels = np.r_[np.repeat(np.arange(ids), 4), [ids, ids + 1]]  # two gallery-only distractors
    centres = np.r_[centres, rng.choice([-1.0, 1.0], size=(2, dim))]

    def draw(labels):
        flips = rng.random((labels.size, dim)) < 0.3
        return (np.where(flips, -centres[labels], centres[labels]) / 8.0).astype(np.float32)

    query, gallery = draw(q_labels), draw(g_labels)
    scores = (query.astype(np.float64) @ gallery.T.astype(np.float64)).astype(np.float32)
    return query, q_labels, gallery, g_labels, scores, q_labels[:, None] == g_labels[None, :]


def _continuous_split(seed: int = 0, ids: int = 15):
    rng = np.random.default_rng(seed)
    q_labels = np.repeat(np.arange(ids), 4)
    g_labels = np.repeat(np.arange(ids), 5)
    centres = rng.normal(size=(ids, 8))
    q = centres[q_labels] + 1.2 * rng.normal(size=(q_labels.size, 8))
    g = centres[g_labels] + 1.2 * rng.normal(size=(g_labels.size, 8))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return q_labels, q @ g.T, q_labels[:, None] == g_labels[None, :]


def test_unit_weights_equal_evaluate_verification():
    query, q_labels, gallery, g_labels, scores, genuine = _dyadic_split()
    ref = ver.evaluate_verification(query, q_labels, gallery, g_labels, far=FARS)
    ours = verification_replicates(scores, genuine, np.ones((2, len(q_labels))), far=FARS)
    assert set(ours) == {"roc_auc", "eer"} | {ver.far_key(f) for f in FARS}
    for key, values in ours.items():
        assert values.shape == (2,)
        assert values[0] == pytest.approx(ref[key], rel=1e-12, abs=1e-15), key
    assert ours["roc_auc"][0] == pytest.approx(roc_auc_score(genuine.ravel(), scores.ravel()), rel=1e-12)


@pytest.mark.parametrize("split", ["continuous", "dyadic"])
def test_integer_weights_equal_duplicated_queries(split):
    if split == "continuous":
        labels, scores, genuine = _continuous_split()
    else:
        _, labels, _, _, scores, genuine = _dyadic_split(seed=1)
    weights = identity_weights(labels, 6, seed=5)
    ours = verification_replicates(scores, genuine, weights, far=FARS)
    for b, row in enumerate(weights):
        # independent reference: the unweighted metrics of queries repeated row[q] times
        ref = _reference(np.repeat(scores, row, axis=0), np.repeat(genuine, row, axis=0))
        for key, value in ref.items():
            assert ours[key][b] == pytest.approx(value, rel=1e-12, abs=1e-15), (b, key)
        pair_weight = np.repeat(row, scores.shape[1])
        assert ours["roc_auc"][b] == pytest.approx(
            roc_auc_score(genuine.ravel(), scores.ravel(), sample_weight=pair_weight), rel=1e-12
        )


def test_verification_chunking_and_count_blocks_do_not_change_results(monkeypatch):
    labels, scores, genuine = _continuous_split(seed=2)
    weights = identity_weights(labels, 40, seed=1)
    whole = verification_replicates(scores, genuine, weights, far=FARS)
    monkeypatch.setattr(st, "_CHUNK_ELEMENTS", 5000)  # a few replicates per chunk
    monkeypatch.setattr(st, "_COUNT_ELEMENTS", 2000)  # many run blocks, rebuilt per chunk
    assert len(st._PairRuns(scores, genuine).blocks) > 3
    pieces = verification_replicates(scores, genuine, weights, far=FARS)
    for key in whole:
        np.testing.assert_allclose(pieces[key], whole[key], rtol=1e-12, atol=1e-15)


def test_replicate_without_genuine_pairs_is_nan():
    labels, scores, genuine = _continuous_split()
    genuine = genuine.copy()
    genuine[0] = False  # query 0 has no genuine pair
    weights = np.zeros((2, labels.size), dtype=np.int32)
    weights[0, 0] = 1
    weights[1] = 1
    out = verification_replicates(scores, genuine, weights, far=FARS)
    assert all(np.isnan(v[0]) and np.isfinite(v[1]) for v in out.values())


def test_impostors_above():
    for scores, genuine in [_continuous_split()[1:], _dyadic_split()[4:]]:
        n_impostor = int((~genuine).sum())
        counts = impostors_above(scores, genuine, FARS)
        fpr, _, _ = ver.roc_points(scores.ravel(), genuine.ravel())
        for f in FARS:
            expected = round(fpr[np.searchsorted(fpr, f, side="right") - 1] * n_impostor)
            assert counts[ver.far_key(f)] == expected
            assert expected <= f * n_impostor


def test_verification_timing_300_by_300_pairs():
    """300 × 300 pairs × 2000 replicates: one sort, then matrix products per chunk (~1 s on one core)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(50), 6)
    centres = rng.normal(size=(50, 32))
    q = centres[labels] + 1.5 * rng.normal(size=(300, 32))
    g = centres[labels] + 1.5 * rng.normal(size=(300, 32))
    scores = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T
    start = time.perf_counter()
    out = verification_replicates(scores, labels[:, None] == labels[None, :], identity_weights(labels, 2000, 0))
    assert time.perf_counter() - start < 10.0
    assert np.isfinite(out["roc_auc"]).all() and out["eer"].std() > 0
