"""The streaming evaluation against the current implementation (lossbench.metrics, lossbench.stats),
scikit-learn and pytorch-metric-learning, on clustered data with ties, Q ≠ G and unscored queries."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from sklearn.metrics import roc_auc_score, roc_curve

from lossbench.core.errors import LossbenchError
from lossbench.evaluation import bootstrap as stats
from lossbench.metrics.ranking import cosine_scores, evaluate_retrieval, l2_normalize, per_query_values
from lossbench.metrics.streaming import evaluate_streaming, group_weights, topk_values
from lossbench.metrics.verification import evaluate_verification, roc_points, tar_at_far

FARS = (1e-2, 1e-3)
B = 60


def _split(seed: int, n_query: int = 240, n_gallery: int = 330, classes: int = 40, dim: int = 16):
    """Clustered embeddings on a coarse grid (tied scores), duplicated gallery rows (exact ties by index),
    and query labels 40..44 absent from the gallery."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes + 5, dim))

    def draw(n: int, labels: np.ndarray) -> np.ndarray:
        x = centres[labels] + rng.normal(scale=1.2, size=(n, dim))
        return (np.round(x * 2) / 2).astype(np.float32)

    q_labels = np.r_[rng.integers(0, classes, n_query - 10), rng.integers(classes, classes + 5, 10)]
    g_labels = rng.integers(0, classes, n_gallery - 30)
    gallery = draw(n_gallery - 30, g_labels)
    copies = rng.integers(0, n_gallery - 30, 30)
    gallery = np.concatenate([gallery, gallery[copies]])
    g_labels = np.r_[g_labels, np.where(np.arange(30) % 2 == 0, g_labels[copies], rng.integers(0, classes, 30))]
    return draw(n_query, q_labels), q_labels, gallery, g_labels


def _scores(query, gallery) -> np.ndarray:
    return cosine_scores(l2_normalize(query), l2_normalize(gallery), slice(0, len(query)))


def _reference(seed: int) -> dict:
    query, ql, gallery, gl = _split(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = evaluate_retrieval(query, ql, gallery, gl, per_query=True)
    ver = evaluate_verification(query, ql, gallery, gl, far=FARS)
    scores, genuine = _scores(query, gallery), ql[:, None] == gl[None, :]
    weights = stats.identity_weights(ql, B, seed)
    rep = {k: stats.mean_replicates(v, weights[:, exact["scored"]]) for k, v in exact["per_query"].items()}
    rep.update(stats.verification_replicates(scores, genuine, weights, FARS))
    above = stats.impostors_above(scores, genuine, FARS)
    return {"exact": exact, "ver": ver, "replicates": rep, "above": above, "data": (query, ql, gallery, gl)}


@pytest.fixture(scope="module", params=[0, 1, 2])
def case(request):
    ref = _reference(request.param)
    ref["seed"] = request.param
    query, ql, gallery, gl = ref["data"]
    ref["ours"] = evaluate_streaming(
        query, ql, gallery, gl, far=FARS, resamples=B, seed=request.param, chunk_bytes=4 * len(gallery) * 7
    )  # 7 queries per block
    return ref


def test_ranking_metrics_equal_current_exactly(case):
    exact, ours = case["exact"], case["ours"]
    assert ours.metrics["num_queries_excluded"] == exact["num_queries_excluded"] == 10
    assert np.array_equal(ours.scored, exact["scored"])
    for key, values in exact["per_query"].items():
        assert np.array_equal(ours.per_query[key], values), key
        assert ours.metrics[key] == exact[key], key
    assert ours.cmc == exact["cmc"]
    assert ours.metrics["num_queries"] == exact["num_queries"]


def test_verification_metrics_equal_current(case):
    ver, ours = case["ver"], case["ours"]
    m, bounds = ours.metrics, ours.bounds
    assert abs(m["roc_auc"] - ver["roc_auc"]) <= min(1e-4, bounds["roc_auc"] + 1e-12)
    assert abs(m["eer"] - ver["eer"]) <= min(1e-3, bounds["eer"] + 1e-12)
    for f in FARS:
        key = f"tar_at_far_{f:.0e}"
        assert m[key] == ver[key]
        assert m[f"impostors_above_{key}"] == case["above"][key]
    for key in ("num_pairs", "num_genuine_pairs", "num_impostor_pairs"):
        assert m[key] == ver[key]


def test_replicates_equal_current(case):
    rep, ours = case["replicates"], case["ours"]
    for key in case["exact"]["per_query"]:
        assert np.array_equal(ours.replicates[key], rep[key]), key
    auc_err = np.abs(ours.replicates["roc_auc"] - rep["roc_auc"])
    eer_err = np.abs(ours.replicates["eer"] - rep["eer"])
    assert auc_err.max() <= min(1e-4, ours.bounds["roc_auc_replicates"] + 1e-12)
    assert eer_err.max() <= min(1e-3, ours.bounds["eer_replicates"] + 1e-12)
    assert ours.bounds["tar_replicates_from_bins"] == 0
    for f in FARS:
        key = f"tar_at_far_{f:.0e}"
        np.testing.assert_array_equal(ours.replicates[key], rep[key])


def test_unit_weights_match_scikit_learn(case):
    query, ql, gallery, gl = case["data"]
    scores, genuine = _scores(query, gallery).ravel(), (ql[:, None] == gl[None, :]).ravel()
    ours = case["ours"]
    assert abs(ours.metrics["roc_auc"] - roc_auc_score(genuine, scores)) <= ours.bounds["roc_auc"] + 1e-12
    fpr, tpr, thresholds = roc_curve(genuine, scores, drop_intermediate=False)
    sklearn_points = {(round(a, 12), round(b, 12)) for a, b in zip(fpr, tpr)}
    for point in ours.roc:  # every curve point is an exact ROC point
        assert (round(point["fpr"], 12), round(point["tpr"], 12)) in sklearn_points
    for f in FARS:
        assert ours.metrics[f"tar_at_far_{f:.0e}"] == tpr[np.searchsorted(fpr, f, side="right") - 1]


def test_block_size_and_given_weights_do_not_change_results(case):
    query, ql, gallery, gl = case["data"]
    weights = stats.identity_weights(ql, B, case["seed"])
    big = evaluate_streaming(query, ql, gallery, gl, far=FARS, weights=weights)
    # two queries per block (one-row blocks take another BLAS kernel, whose float32 rounding differs)
    single = evaluate_streaming(query, ql, gallery, gl, far=FARS, weights=weights, chunk_bytes=8 * len(gallery))
    assert big.metrics == single.metrics
    for key, values in big.replicates.items():
        np.testing.assert_array_equal(single.replicates[key], values)


def test_group_weights_are_identity_weights():
    labels = np.array(["b", "a", "c", "a", "b", "d"])
    counts, groups = group_weights(labels, 50, 3)
    assert np.array_equal(counts[:, groups], stats.identity_weights(labels, 50, 3))


def test_extra_per_query_values_get_replicates(case):
    ours, exact = case["ours"], case["exact"]
    first_hit = np.arange(ours.scored.sum()) % 7
    ours.add_per_query({"index_" + k: v for k, v in topk_values(first_hit).items()})
    for key, value in per_query_values(first_hit, (1, 3)).items():
        np.testing.assert_array_equal(topk_values(first_hit, (1, 3))[key], value)
    values = (first_hit < 1).astype(np.float64)
    assert ours.metrics["index_score"] == pytest.approx(
        600 * (first_hit < 1).mean() + 300 * (first_hit < 5).mean() + 100
    )
    weights = stats.identity_weights(case["data"][1], B, case["seed"])[:, exact["scored"]]
    assert ours.metrics["index_top1"] == values.mean()
    np.testing.assert_array_equal(ours.replicates["index_top1"], stats.mean_replicates(values, weights))
    with pytest.raises(LossbenchError, match="one value per scored query"):
        ours.add_per_query({"index_top5": values[:-1]})


def _all_vs_all_case(seed: int = 5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(30, 24))
    labels = np.r_[np.repeat(np.arange(20), rng.integers(2, 9, 20)), np.arange(20, 30)]  # 10 singletons
    x = centres[labels] + rng.normal(scale=1.0, size=(labels.size, 24))
    order = rng.permutation(labels.size)
    return x[order].astype(np.float32), labels[order]


def test_all_vs_all_matches_pytorch_metric_learning():
    x, labels = _all_vs_all_case()
    ours = evaluate_streaming(x, labels, far=FARS, resamples=B, chunk_bytes=4 * len(x) * 5)
    singletons = np.bincount(labels)[labels] == 1
    assert ours.metrics["num_queries"] == (~singletons).sum()
    assert ours.metrics["num_queries_excluded"] == 10
    calc = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k=None,
        knn_func=CustomKNN(CosineSimilarity()),
        device=torch.device("cpu"),
    )
    ref = calc.get_accuracy(x, labels, x, labels, ref_includes_query=True)
    assert ours.metrics["top1"] == pytest.approx(ref["precision_at_1"], abs=1e-6)
    assert ours.metrics["r_precision"] == pytest.approx(ref["r_precision"], abs=1e-6)
    assert ours.metrics["map_at_r"] == pytest.approx(ref["mean_average_precision_at_r"], abs=1e-6)


def test_all_vs_all_verification_uses_ordered_pairs_without_self():
    x, labels = _all_vs_all_case()
    ours = evaluate_streaming(x, labels, far=FARS, resamples=B)
    off = ~np.eye(len(x), dtype=bool)
    scores, genuine = _scores(x, x)[off], (labels[:, None] == labels[None, :])[off]
    assert ours.metrics["num_pairs"] == len(x) * (len(x) - 1)
    assert ours.metrics["num_genuine_pairs"] == genuine.sum()
    assert abs(ours.metrics["roc_auc"] - roc_auc_score(genuine, scores)) <= ours.bounds["roc_auc"] + 1e-12
    fpr, tpr, _ = roc_points(scores, genuine)
    for f in FARS:
        assert ours.metrics[f"tar_at_far_{f:.0e}"] == tar_at_far(fpr, tpr, f)


def test_no_scored_query_is_an_error():
    x, labels = _all_vs_all_case()
    with pytest.raises(LossbenchError, match="no query has a same-label gallery item"):
        evaluate_streaming(x, np.arange(len(x)), resamples=B)


def test_replicates_below_a_short_tail_fall_back_to_bins(case, monkeypatch):
    import lossbench.metrics.streaming as se

    monkeypatch.setattr(se, "TAIL_FACTOR", 1.05)
    monkeypatch.setattr(se, "TAIL_MARGIN", 0)
    query, ql, gallery, gl = case["data"]
    ours = se.evaluate_streaming(query, ql, gallery, gl, far=FARS, resamples=B, seed=case["seed"])
    key = f"tar_at_far_{FARS[0]:.0e}"
    assert ours.metrics[key] == case["ver"][key]  # unit weights stay inside the tail
    fell_back = ours.bounds["tar_replicates_from_bins"]
    assert fell_back > 0
    exact, approx = case["replicates"][key], ours.replicates[key]
    assert (approx <= exact + 1e-15).all()  # binned points are exact points: never above
    assert (approx == exact).sum() >= B - fell_back


def test_exact_metrics_do_not_depend_on_the_chunk_size():
    """Tied scores are ordered by gallery index only if every chunk size computes the same bits for a score."""
    query, ql, gallery, gl = _split(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unscored queries
        runs = [evaluate_retrieval(query, ql, gallery, gl, chunk=c, per_query=True) for c in (None, 1, 7, 16, 33)]
    for run in runs[1:]:
        for key, values in runs[0]["per_query"].items():
            assert np.array_equal(values, run["per_query"][key]), key
