"""Evaluate one run (a loss × a training seed) on the test split.

Writes the run's metrics (exact ranking, what its FAISS index returned in the indexing step, verification), its
ROC/CMC curves, and the bootstrap replicates of every metric over resampled test identities — the raw material of the
comparison's confidence intervals (:mod:`lossbench.evaluation.bootstrap`). Every run of a study is scored on the same
queries and resampled with the same identity draws, so losses are compared pairwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lossbench.config.params import Params
from lossbench.core import paths
from lossbench.core.io import atomic_save_npz, atomic_write_json, atomic_write_text
from lossbench.data.store import load_processed
from lossbench.embedding.sets import TestSet
from lossbench.evaluation.bootstrap import identity_weights, impostors_above, mean_replicates, verification_replicates
from lossbench.metrics.catalogue import INDEX_PREFIX
from lossbench.metrics.ranking import cosine_similarity_chunks, evaluate_retrieval, per_query_values
from lossbench.metrics.verification import evaluate_verification


def similarity_matrix(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Cosine similarity of every query (rows) with every gallery item (columns)."""
    scores = np.empty((len(query), len(gallery)), dtype=np.float32)
    for rows, sim in cosine_similarity_chunks(query, gallery):
        scores[rows] = sim
    return scores


def index_first_hits(ids: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """0-based position of each query's first same-label result in what the index returned (k = a miss)."""
    found = ids >= 0
    same = found & (gallery_labels[np.where(found, ids, 0)] == query_labels[:, None])
    return np.where(same.any(axis=1), same.argmax(axis=1), ids.shape[1])


def evaluate_run(params: Params, loss: str, seed: int) -> str:
    """Write ``metrics/runs/<loss>/seed<seed>.json``, its curves and replicates; return a summary line."""
    _, manifest = load_processed(paths.PROCESSED)
    test = TestSet.load(loss, seed, manifest)
    topk = tuple(params.evaluate.topk)
    far = tuple(params.evaluate.far)

    exact = evaluate_retrieval(
        test.query, test.query_labels, test.gallery, test.gallery_labels, topk=topk, per_query=True
    )
    scored = exact.pop("scored")
    per_query = exact.pop("per_query")
    with np.load(paths.neighbours_file(loss, seed)) as neighbours:
        ids = neighbours["ids"][scored]
    first_hit = index_first_hits(ids, test.query_labels[scored], test.gallery_labels)
    per_query.update({INDEX_PREFIX + key: value for key, value in per_query_values(first_hit, topk).items()})

    verification = evaluate_verification(test.query, test.query_labels, test.gallery, test.gallery_labels, far=far)
    scores = similarity_matrix(test.query, test.gallery)
    genuine = test.query_labels[:, None] == test.gallery_labels[None, :]
    metrics = {key: value for key, value in {**exact, **verification}.items() if key not in ("cmc", "roc")}
    metrics["num_identities"] = int(np.unique(test.query_labels[scored]).size)
    metrics.update({key: float(np.mean(value)) for key, value in per_query.items() if key.startswith(INDEX_PREFIX)})
    metrics.update(
        {f"impostors_above_{key}": int(count) for key, count in impostors_above(scores, genuine, far).items()}
    )

    weights = identity_weights(test.query_labels, params.stats.resamples, params.seed)
    replicates = {key: mean_replicates(value, weights[:, scored]) for key, value in per_query.items()}
    replicates.update(verification_replicates(scores, genuine, weights, far))

    atomic_write_json(paths.run_metrics_path(loss, seed), metrics)
    atomic_save_npz(paths.replicates_file(loss, seed), replicates)
    _write_curves(paths.curves_dir(loss, seed), exact, verification)
    return (
        f"{loss} seed {seed}: top1={metrics['top1']:.3f} score={metrics['score']:.1f} mAP={metrics['mAP']:.3f} "
        f"ROC-AUC={metrics['roc_auc']:.3f}; index top1={metrics[INDEX_PREFIX + 'top1']:.3f} "
        f"({metrics['num_queries']} queries, {len(test.gallery)} gallery)"
    )


def _write_curves(directory, retrieval: dict, verification: dict) -> None:
    cmc = pd.DataFrame({"rank": np.arange(1, len(retrieval["cmc"]) + 1), "accuracy": retrieval["cmc"]})
    atomic_write_text(directory / "cmc.csv", cmc.to_csv(index=False))
    atomic_write_text(directory / "roc.csv", pd.DataFrame(verification["roc"]).to_csv(index=False))
