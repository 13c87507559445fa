"""Verification metrics over every query–gallery pair: ROC-AUC, EER, TAR at fixed FAR, ROC curve.

A pair is *genuine* when query and gallery item share a label and is scored by cosine similarity;
accepting a pair means ``score >= threshold``. The ROC has one point per distinct score (ties form
one step, exactly like ``sklearn.metrics.roc_curve``), so the AUC is exact with ties counted as half.

- EER: the point of the piecewise-linear ROC where FPR = FNR (= 1 − TPR).
- TAR@FAR f: the highest TPR of an operating point (threshold) whose FPR ≤ f.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lossbench.core.errors import LossbenchError
from lossbench.metrics.catalogue import far_key
from lossbench.metrics.ranking import as_embeddings, cosine_similarity_chunks, encode_labels


def _pair_scores(
    query: np.ndarray, gallery: np.ndarray, q_codes: np.ndarray, g_codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Flat cosine scores and genuine flags of all query × gallery pairs (row-major)."""
    scores = np.empty((query.shape[0], gallery.shape[0]), dtype=np.float32)
    for rows, sim in cosine_similarity_chunks(query, gallery):
        scores[rows] = sim
    return scores.ravel(), (q_codes[:, None] == g_codes[None, :]).ravel()


def roc_points(scores: np.ndarray, genuine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` at every distinct score, starting at (0, 0) with a threshold above
    the highest score (finite, so it serialises to JSON)."""
    order = np.argsort(-scores)  # order within a tie is irrelevant: ties collapse into one point
    sorted_scores = scores[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    tps = np.cumsum(genuine[order], dtype=np.int64)[last_of_value]
    fps = last_of_value + 1 - tps
    top = np.nextafter(sorted_scores[0], np.float32(np.inf))
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    thresholds = np.r_[top, sorted_scores[last_of_value]].astype(np.float64)
    return fpr, tpr, thresholds


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """FPR where the piecewise-linear ROC crosses FPR = 1 − TPR."""
    gap = (1.0 - tpr) - fpr  # non-increasing from 1 at (0, 0) to -1 at (1, 1)
    i = int(np.argmax(gap <= 0.0))
    if gap[i] == 0.0:
        return float(fpr[i])
    t = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def tar_at_far(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """Highest TPR among operating points with FPR ≤ ``far`` (TPR is non-decreasing in FPR)."""
    return float(tpr[np.searchsorted(fpr, far, side="right") - 1])


def downsample_curve(fpr: np.ndarray, max_points: int, min_fpr: float) -> np.ndarray:
    """Indices of at most ``max_points`` ROC points spread evenly in both linear and log FPR."""
    if fpr.size <= max_points:
        return np.arange(fpr.size)
    half = (max_points - 2) // 2
    if half == 0:
        return np.array([0, fpr.size - 1])
    targets = np.r_[np.linspace(0.0, 1.0, half), np.logspace(np.log10(min_fpr), 0.0, half)]
    picks = np.searchsorted(fpr, targets, side="right") - 1
    return np.unique(np.r_[0, picks, fpr.size - 1])


def evaluate_verification(
    query_emb: np.ndarray,
    query_labels: Sequence,
    gallery_emb: np.ndarray,
    gallery_labels: Sequence,
    far: Sequence[float] = (1e-3, 1e-4),
    max_curve_points: int = 200,
) -> dict:
    """Verification metrics of all query × gallery pairs scored by cosine similarity.

    Keys: ``roc_auc``, ``eer``, ``tar_at_far_{far:.0e}`` per FAR (e.g. ``tar_at_far_1e-03``),
    ``num_pairs``, ``num_genuine_pairs``, ``num_impostor_pairs`` and ``roc``: at most
    ``max_curve_points`` dicts ``{fpr, tpr, threshold}`` for plotting. One sort of all pair scores;
    10⁷ pairs take a few seconds and a few hundred MB.
    """
    fars = tuple(float(f) for f in far)
    if not fars or any(not 0.0 < f < 1.0 for f in fars):
        raise LossbenchError(f"far must be a non-empty list of rates in (0, 1) (e.g. [1e-3, 1e-4]), got {far}")
    if max_curve_points < 2:
        raise LossbenchError(f"max_curve_points must be at least 2, got {max_curve_points}")
    query = as_embeddings(query_emb, "query embeddings")
    gallery = as_embeddings(gallery_emb, "gallery embeddings")
    if query.shape[1] != gallery.shape[1]:
        raise LossbenchError(
            f"query and gallery embeddings differ in dimension "
            f"({query.shape[1]} vs {gallery.shape[1]}): embed both with the same model"
        )
    q_codes, g_codes = encode_labels(query_labels, gallery_labels, query.shape[0], gallery.shape[0])
    scores, genuine = _pair_scores(query, gallery, q_codes, g_codes)
    n_genuine = int(genuine.sum())
    n_impostor = int(genuine.size - n_genuine)
    if n_genuine == 0 or n_impostor == 0:
        raise LossbenchError(
            f"verification needs both genuine and impostor pairs, got {n_genuine} genuine and {n_impostor} "
            "impostor pairs: the evaluated query and gallery sets need shared and distinct identities"
        )

    fpr, tpr, thresholds = roc_points(scores, genuine)
    result: dict = {"roc_auc": float(np.trapezoid(tpr, fpr)), "eer": equal_error_rate(fpr, tpr)}
    result.update({far_key(f): tar_at_far(fpr, tpr, f) for f in fars})
    result["num_pairs"] = int(genuine.size)
    result["num_genuine_pairs"] = n_genuine
    result["num_impostor_pairs"] = n_impostor
    keep = downsample_curve(fpr, max_curve_points, min_fpr=1.0 / n_impostor)
    result["roc"] = [{"fpr": float(fpr[i]), "tpr": float(tpr[i]), "threshold": float(thresholds[i])} for i in keep]
    return result
