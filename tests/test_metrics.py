"""Retrieval and verification metrics against pytorch-metric-learning, scikit-learn and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from lossbench.core.errors import LossbenchError
from lossbench.metrics import challenge_score, evaluate_retrieval, evaluate_verification, rank_gallery


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def random_split():
    """60 queries / 200 gallery items over 15 classes, dim 16; classes 13 and 14 have no gallery item."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(15, 16))
    gallery_labels = rng.integers(0, 13, size=200)
    query_labels = rng.integers(0, 15, size=60)
    gallery = _normalise(centres[gallery_labels] + 2.0 * rng.normal(size=(200, 16)))
    query = _normalise(centres[query_labels] + 2.0 * rng.normal(size=(60, 16)))
    return query, query_labels, gallery, gallery_labels


def test_retrieval_matches_pytorch_metric_learning_and_sklearn(random_split):
    query, q_labels, gallery, g_labels = random_split
    lone = ~np.isin(q_labels, g_labels)
    assert 0 < lone.sum() < len(q_labels)  # the fixture really exercises the exclusion

    with pytest.warns(UserWarning, match=f"{lone.sum()} of 60 queries"):
        ours = evaluate_retrieval(query, q_labels, gallery, g_labels, chunk=7)
    assert ours["num_queries_excluded"] == lone.sum()
    assert ours["num_queries"] == (~lone).sum()

    calc = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r", "r_precision", "mean_average_precision"),
        k=None,
        knn_func=CustomKNN(CosineSimilarity()),
        device=torch.device("cpu"),
    )
    ref = calc.get_accuracy(query[~lone], q_labels[~lone], gallery, g_labels, ref_includes_query=False)
    assert ours["top1"] == pytest.approx(ref["precision_at_1"], abs=1e-6)
    assert ours["map_at_r"] == pytest.approx(ref["mean_average_precision_at_r"], abs=1e-6)
    assert ours["r_precision"] == pytest.approx(ref["r_precision"], abs=1e-6)
    assert ours["mAP"] == pytest.approx(ref["mean_average_precision"], abs=1e-6)

    sims = query[~lone].astype(np.float64) @ gallery.T.astype(np.float64)
    sk_ap = [average_precision_score(g_labels == label, s) for label, s in zip(q_labels[~lone], sims)]
    assert ours["mAP"] == pytest.approx(np.mean(sk_ap), abs=1e-6)

    # top-k from an independent full argsort per query
    order = np.argsort(-sims, axis=1)
    first_hit = (g_labels[order] == q_labels[~lone, None]).argmax(axis=1)
    for k in (1, 5, 10):
        assert ours[f"top{k}"] == pytest.approx(np.mean(first_hit < k), abs=1e-12)
    assert ours["cmc"] == pytest.approx([np.mean(first_hit < k) for k in range(1, 11)], abs=1e-12)
    assert ours["score"] == pytest.approx(600 * ours["top1"] + 300 * ours["top5"] + 100 * ours["top10"])
    assert 0.0 < ours["top1"] < ours["top10"] < 1.0  # informative, not saturated


def test_chunk_size_does_not_change_results(random_split):
    query, q_labels, gallery, g_labels = random_split
    with pytest.warns(UserWarning):
        a = evaluate_retrieval(query, q_labels, gallery, g_labels, chunk=1)
    with pytest.warns(UserWarning):
        b = evaluate_retrieval(query, q_labels, gallery, g_labels)
    for key in ("top1", "top5", "top10", "mAP", "map_at_r", "r_precision", "cmc"):
        assert a[key] == pytest.approx(b[key], abs=1e-12)


def _toy():
    # Gallery = the 5 standard basis vectors, so query j's similarity to gallery item i is w_i / |w|
    # and the ranking is the order of the query's weights. Gallery labels: [0, 1, 2, 0, 3].
    #   q0 label 0, w = [5,4,3,2,1]: ranking g0 g1 g2 g3 g4, hits at ranks 1 and 4 (R = 2)
    #      AP = (1/1 + 2/4)/2 = 0.75; first R=2: hit, miss -> MAP@R = (1/1)/2 = 0.5; R-precision = 1/2
    #   q1 label 1, w = [5,1,4,3,2]: ranking g0 g2 g3 g4 g1, hit at rank 5 (R = 1)
    #      AP = 1/5; MAP@R = 0; R-precision = 0
    #   q2 label 2, w = [5,1,4,2,3]: ranking g0 g2 g4 g3 g1, hit at rank 2 (R = 1)
    #      AP = 1/2; MAP@R = 0; R-precision = 0
    # first hits at ranks 1, 5, 2 -> top1 = 1/3, top5 = top10 = 1, CMC = [1/3, 2/3, 2/3, 2/3, 1, 1, ...]
    # score = 600/3 + 300 + 100 = 600; mAP = (0.75 + 0.2 + 0.5)/3; MAP@R = R-precision = 0.5/3
    gallery = np.eye(5, dtype=np.float32)
    query = _normalise(np.array([[5, 4, 3, 2, 1], [5, 1, 4, 3, 2], [5, 1, 4, 2, 3]], dtype=np.float64))
    return query, np.array([0, 1, 2]), gallery, np.array([0, 1, 2, 0, 3])


def test_hand_computed_toy_case():
    res = evaluate_retrieval(*_toy())
    assert res["top1"] == pytest.approx(1 / 3)
    assert res["top5"] == pytest.approx(1.0)
    assert res["top10"] == pytest.approx(1.0)
    assert res["score"] == pytest.approx(600.0)
    assert res["mAP"] == pytest.approx((0.75 + 0.2 + 0.5) / 3)
    assert res["map_at_r"] == pytest.approx(0.5 / 3)
    assert res["r_precision"] == pytest.approx(0.5 / 3)
    assert res["cmc"] == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3, 1, 1, 1, 1, 1, 1])
    assert (res["num_queries"], res["num_queries_excluded"]) == (3, 0)


def test_string_labels_and_extra_topk():
    query, q_labels, gallery, g_labels = _toy()
    names = np.array(["ann", "bob", "cat", "dan"])
    res = evaluate_retrieval(query, names[q_labels], gallery, names[g_labels], topk=(2, 1))
    assert res["top2"] == pytest.approx(2 / 3)
    assert res["score"] == pytest.approx(600.0)
    assert len(res["cmc"]) == 10  # top-1, top-5 and top-10 are always reported for the score


def test_excluded_query_is_dropped_from_all_metrics():
    query, q_labels, gallery, g_labels = _toy()
    query = np.vstack([query, _normalise(np.ones((1, 5)))])
    with pytest.warns(UserWarning, match="1 of 4 queries"):
        res = evaluate_retrieval(query, np.r_[q_labels, 7], gallery, g_labels)
    assert (res["num_queries"], res["num_queries_excluded"]) == (3, 1)
    assert res["score"] == pytest.approx(600.0)
    assert res["mAP"] == pytest.approx((0.75 + 0.2 + 0.5) / 3)


def test_perfect_ranking_scores_1000():
    rng = np.random.default_rng(1)
    centres = _normalise(rng.normal(size=(8, 32)))
    g_labels = np.repeat(np.arange(8), 3)
    q_labels = np.arange(8)
    gallery = _normalise(centres[g_labels] + 0.01 * rng.normal(size=(24, 32)))
    res = evaluate_retrieval(centres, q_labels, gallery, g_labels)
    assert res["score"] == pytest.approx(1000.0)
    assert res["mAP"] == pytest.approx(1.0)
    assert res["map_at_r"] == pytest.approx(1.0)
    assert res["r_precision"] == pytest.approx(1.0)


def test_rank_gallery_breaks_ties_by_gallery_index():
    # gallery items 1, 2, 4 and 5 are identical, so they tie for every query
    base = _normalise(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64))
    gallery = base[[0, 1, 1, 2, 1, 1]]
    query = _normalise(np.array([[0.1, 1.0, 0.5]]))
    _, full = rank_gallery(query, gallery)
    assert full.tolist() == [[1, 2, 4, 5, 3, 0]]
    for k in range(1, 7):  # the partial (argpartition) path keeps the lowest-index ties
        scores, top = rank_gallery(query, gallery, k=k)
        assert top.tolist() == [full[0, :k].tolist()]
        assert np.all(np.diff(scores[0]) <= 0)
    assert rank_gallery(query, gallery, k=50)[1].shape == (1, 6)


def test_rank_gallery_topk_matches_full_sort(random_split):
    query, _, gallery, _ = random_split
    full_scores, full = rank_gallery(query, gallery)
    scores, top = rank_gallery(query, gallery, k=10, chunk=13)
    np.testing.assert_array_equal(top, full[:, :10])
    np.testing.assert_allclose(scores, np.take_along_axis(query @ gallery.T, top, axis=1), atol=1e-6)
    np.testing.assert_allclose(scores, full_scores[:, :10], atol=1e-6)  # blocking changes float rounding


def test_challenge_score_and_bad_inputs():
    assert challenge_score(0.5, 0.8, 0.9) == pytest.approx(300 + 240 + 90)
    with pytest.raises(LossbenchError, match="top1 must be a fraction"):
        challenge_score(50.0, 0.8, 0.9)
    query, q_labels, gallery, g_labels = _toy()
    with pytest.raises(LossbenchError, match="topk"):
        evaluate_retrieval(query, q_labels, gallery, g_labels, topk=(0, 5))
    with pytest.raises(LossbenchError, match="dimension"):
        evaluate_retrieval(query[:, :4], q_labels, gallery, g_labels)
    with pytest.raises(LossbenchError, match="labels must be 1-D"):
        evaluate_retrieval(query, q_labels[:2], gallery, g_labels)
    with pytest.raises(LossbenchError, match="none of the 3 queries"):
        evaluate_retrieval(query, q_labels + 10, gallery, g_labels)
    with pytest.raises(LossbenchError, match="NaN"):
        evaluate_retrieval(np.full_like(query, np.nan), q_labels, gallery, g_labels)


def _reference_eer(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """EER by bisection on the sklearn ROC, linearly interpolated (the usual brentq recipe)."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 1.0 - mid - np.interp(mid, fpr, tpr) > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def test_verification_matches_sklearn(random_split):
    query, q_labels, gallery, g_labels = random_split
    ours = evaluate_verification(query, q_labels, gallery, g_labels, far=(1e-3, 1e-2, 0.1))
    scores = (query.astype(np.float64) @ gallery.T.astype(np.float64)).ravel()
    genuine = (q_labels[:, None] == g_labels[None, :]).ravel()
    assert ours["num_pairs"] == 60 * 200
    assert ours["num_genuine_pairs"] == genuine.sum()
    assert ours["roc_auc"] == pytest.approx(roc_auc_score(genuine, scores), abs=1e-6)

    fpr, tpr, _ = roc_curve(genuine, scores, drop_intermediate=False)
    assert ours["eer"] == pytest.approx(_reference_eer(fpr, tpr), abs=1e-6)
    assert 0.05 < ours["eer"] < 0.5
    for far, key in ((1e-3, "tar_at_far_1e-03"), (1e-2, "tar_at_far_1e-02"), (0.1, "tar_at_far_1e-01")):
        assert ours[key] == pytest.approx(tpr[fpr <= far].max(), abs=1e-9)
    assert ours["tar_at_far_1e-03"] < ours["tar_at_far_1e-02"] < ours["tar_at_far_1e-01"]

    roc = ours["roc"]
    assert len(roc) <= 200
    assert roc[0]["fpr"] == 0.0 and roc[0]["tpr"] == 0.0 and roc[-1]["fpr"] == roc[-1]["tpr"] == 1.0
    assert all(
        a["fpr"] <= b["fpr"] and a["tpr"] <= b["tpr"] and a["threshold"] > b["threshold"] for a, b in zip(roc, roc[1:])
    )
    point = roc[len(roc) // 2]  # each point is a real operating point of its threshold
    assert point["tpr"] == pytest.approx((scores[genuine] >= point["threshold"]).mean(), abs=1e-4)


def test_verification_ties_counted_like_sklearn():
    # unit vectors with entries in {0, ±1, ±0.5}: every cosine is exactly one of -1, -0.5, 0, 0.5, 1,
    # so the 12 × 8 pair scores are heavily tied and identical in any float precision
    rng = np.random.default_rng(2)
    pool = np.vstack([np.eye(4), -np.eye(4), 0.5 * np.array(np.meshgrid(*[[-1, 1]] * 4)).reshape(4, -1).T])
    query, gallery = pool[rng.integers(0, len(pool), 12)], pool[rng.integers(0, len(pool), 8)]
    q_labels, g_labels = rng.integers(0, 3, 12), rng.integers(0, 3, 8)
    ours = evaluate_verification(query, q_labels, gallery, g_labels, far=(0.2,), max_curve_points=3)
    scores = (query @ gallery.T).ravel()
    genuine = (q_labels[:, None] == g_labels[None, :]).ravel()
    assert len(np.unique(scores)) <= 5
    assert ours["roc_auc"] == pytest.approx(roc_auc_score(genuine, scores), abs=1e-12)
    fpr, tpr, _ = roc_curve(genuine, scores)
    assert ours["tar_at_far_2e-01"] == pytest.approx(tpr[fpr <= 0.2].max(), abs=1e-12)
    assert ours["eer"] == pytest.approx(_reference_eer(fpr, tpr), abs=1e-9)
    assert [p["fpr"] for p in ours["roc"]] == [0.0, 1.0]  # downsampled to the end points


def test_verification_bad_inputs():
    query, q_labels, gallery, g_labels = _toy()
    with pytest.raises(LossbenchError, match="far must be"):
        evaluate_verification(query, q_labels, gallery, g_labels, far=(0.0,))
    with pytest.raises(LossbenchError, match="genuine and impostor"):
        evaluate_verification(query, q_labels + 10, gallery, g_labels)


def _reference_ranking_metrics(query, q_labels, gallery, g_labels):
    """Per-query loops over a full stable argsort (ties by gallery index): first hit, AP, MAP@R, R-precision."""
    sims = query @ gallery.T
    first, ap, ap_r, r_prec = [], [], [], []
    for label, row in zip(q_labels, sims):
        match = g_labels[np.argsort(-row, kind="stable")] == label
        r = int(match.sum())
        hits = np.flatnonzero(match)  # 0-based ranks of the relevant items, ascending
        precisions = np.arange(1, r + 1) / (hits + 1)
        first.append(hits[0])
        ap.append(precisions.sum() / r)
        ap_r.append(precisions[hits < r].sum() / r)
        r_prec.append((hits < r).sum() / r)
    return np.array(first), np.mean(ap), np.mean(ap_r), np.mean(r_prec)


@pytest.mark.parametrize("chunk_bytes", [None, 64])
def test_heavy_ties_are_ranked_by_gallery_index(monkeypatch, chunk_bytes):
    # unit vectors with entries in {0, ±1, ±0.5}: every cosine is exactly -1, -0.5, 0, 0.5 or 1, so most
    # relevant items tie with other items; the metrics must equal those of the stable (index-ordered) ranking
    from lossbench.metrics import ranking as retrieval

    if chunk_bytes:  # tiny working memory: one query per chunk and one tie pair per block
        monkeypatch.setattr(retrieval, "_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(3)
    pool = np.vstack([np.eye(4), -np.eye(4), 0.5 * np.array(np.meshgrid(*[[-1, 1]] * 4)).reshape(4, -1).T])
    query, gallery = pool[rng.integers(0, len(pool), 40)], pool[rng.integers(0, len(pool), 90)]
    q_labels, g_labels = rng.integers(0, 4, 40), rng.integers(0, 4, 90)
    res = evaluate_retrieval(query, q_labels, gallery, g_labels)
    first, ap, ap_r, r_prec = _reference_ranking_metrics(query, q_labels, gallery, g_labels)
    assert res["mAP"] == pytest.approx(ap, abs=1e-12)
    assert res["map_at_r"] == pytest.approx(ap_r, abs=1e-12)
    assert res["r_precision"] == pytest.approx(r_prec, abs=1e-12)
    assert res["cmc"] == pytest.approx([np.mean(first < k) for k in range(1, 11)], abs=1e-12)


def test_skewed_class_sizes_match_the_full_ranking():
    # one label owns half of the gallery, others a single item: per-query relevant counts differ a lot
    rng = np.random.default_rng(4)
    g_labels = np.concatenate([np.zeros(150, dtype=int), np.arange(1, 151)])
    q_labels = np.concatenate([np.zeros(10, dtype=int), rng.integers(1, 151, 30)])
    centres = _normalise(rng.normal(size=(151, 8)))
    gallery = _normalise(centres[g_labels] + 0.8 * rng.normal(size=(300, 8)))
    query = _normalise(centres[q_labels] + 0.8 * rng.normal(size=(40, 8)))
    res = evaluate_retrieval(query, q_labels, gallery, g_labels, chunk=7)
    first, ap, ap_r, r_prec = _reference_ranking_metrics(query, q_labels, gallery, g_labels)
    assert res["mAP"] == pytest.approx(ap, abs=1e-9)
    assert res["map_at_r"] == pytest.approx(ap_r, abs=1e-9)
    assert res["r_precision"] == pytest.approx(r_prec, abs=1e-9)
    assert res["cmc"] == pytest.approx([np.mean(first < k) for k in range(1, 11)], abs=1e-12)
