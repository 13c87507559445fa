"""Evaluate one run (a loss × a training seed) on the test split.

Writes the run's metrics (exact ranking, what its FAISS index returned in the indexing step, verification), its
ROC/CMC curves, and the identity-bootstrap replicates of every metric — the raw material of the comparison's
confidence intervals (:mod:`lossbench.comparison.verdicts`). One streaming pass over the similarities
(:mod:`lossbench.metrics.streaming`) in bounded memory. Every run of a study is scored on the same queries and
resampled with the same identity draws, so losses are compared pairwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lossbench.config.params import Params
from lossbench.core import paths
from lossbench.core.io import atomic_save_npz, atomic_write_json, atomic_write_text
from lossbench.data.store import load_processed
from lossbench.embedding.sets import TestSet
from lossbench.metrics.catalogue import INDEX_PREFIX
from lossbench.metrics.streaming import evaluate_streaming, topk_values


def index_first_hits(ids: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """0-based position of each query's first same-label result in what the index returned (k = a miss)."""
    found = ids >= 0
    same = found & (gallery_labels[np.where(found, ids, 0)] == query_labels[:, None])
    return np.where(same.any(axis=1), same.argmax(axis=1), ids.shape[1])


def evaluate_run(params: Params, loss: str, seed: int) -> str:
    """Write ``metrics/runs/<loss>/seed<seed>.json``, its curves and replicates; return a summary line."""
    _, manifest = load_processed(paths.PROCESSED)
    test = TestSet.load(loss, seed, manifest)
    cfg = params.evaluate
    if cfg.protocol == "all_vs_all":
        query, query_labels = test.all_items()
        gallery, gallery_labels = None, query_labels
    else:
        query, query_labels, gallery, gallery_labels = test.query, test.query_labels, test.gallery, test.gallery_labels
    result = evaluate_streaming(
        query,
        query_labels,
        gallery,
        None if gallery is None else gallery_labels,
        topk=cfg.topk,
        far=cfg.far,
        resamples=params.stats.resamples,
        seed=params.seed,
    )
    with np.load(paths.neighbours_file(loss, seed)) as neighbours:
        ids = neighbours["ids"][result.scored]
    first_hit = index_first_hits(ids, query_labels[result.scored], gallery_labels)
    result.add_per_query({INDEX_PREFIX + key: value for key, value in topk_values(first_hit, cfg.topk).items()})
    metrics = result.metrics

    atomic_write_json(paths.run_metrics_path(loss, seed), metrics)
    atomic_save_npz(paths.replicates_file(loss, seed), result.replicates)
    _write_curves(paths.curves_dir(loss, seed), result.cmc, result.roc)
    return (
        f"{loss} seed {seed}: top1={metrics['top1']:.3f} score={metrics['score']:.1f} mAP={metrics['mAP']:.3f} "
        f"ROC-AUC={metrics['roc_auc']:.3f}; index top1={metrics[INDEX_PREFIX + 'top1']:.3f} "
        f"({metrics['num_queries']} queries, {len(query if gallery is None else gallery)} gallery, {cfg.protocol})"
    )


def _write_curves(directory, cmc: list[float], roc: list[dict]) -> None:
    table = pd.DataFrame({"rank": np.arange(1, len(cmc) + 1), "accuracy": cmc})
    atomic_write_text(directory / "cmc.csv", table.to_csv(index=False))
    atomic_write_text(directory / "roc.csv", pd.DataFrame(roc).to_csv(index=False))
