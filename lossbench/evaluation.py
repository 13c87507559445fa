"""Evaluate one loss on the test split: retrieval through its FAISS index, exact metrics, curves and figures."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lossbench import paths
from lossbench.config import Params
from lossbench.data.store import load_processed
from lossbench.embedding_sets import load_embeddings
from lossbench.io import atomic_write_json, atomic_write_text
from lossbench.metrics.retrieval import evaluate_retrieval, rank_gallery
from lossbench.metrics.verification import evaluate_verification
from lossbench.retrieval.index import load_index, search


@dataclass
class TestSet:
    """Test query/gallery embeddings of one loss with their labels and manifest rows."""

    query: np.ndarray
    query_rows: np.ndarray
    gallery: np.ndarray
    gallery_rows: np.ndarray
    manifest: pd.DataFrame

    @classmethod
    def load(cls, loss: str, manifest: pd.DataFrame) -> "TestSet":
        query, query_rows = load_embeddings(paths.embeddings_dir(loss), "query")
        gallery, gallery_rows = load_embeddings(paths.embeddings_dir(loss), "gallery")
        return cls(np.asarray(query), query_rows, np.asarray(gallery), gallery_rows, manifest.set_index("row"))

    def labels(self, rows: np.ndarray) -> np.ndarray:
        return self.manifest.loc[rows, "label"].to_numpy()

    @property
    def query_labels(self) -> np.ndarray:
        return self.labels(self.query_rows)

    @property
    def gallery_labels(self) -> np.ndarray:
        return self.labels(self.gallery_rows)


def index_recall(index_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean share of the exact top-k that the index also returned (1.0 for an exact index)."""
    k = exact_ids.shape[1]
    hits = [len(np.intersect1d(a[a >= 0], b)) for a, b in zip(index_ids, exact_ids)]
    return float(np.mean(hits) / k)


def _write_curves(directory: Path, retrieval: dict, verification: dict) -> None:
    cmc = pd.DataFrame({"rank": np.arange(1, len(retrieval["cmc"]) + 1), "accuracy": retrieval["cmc"]})
    atomic_write_text(directory / "cmc.csv", cmc.to_csv(index=False))
    atomic_write_text(directory / "roc.csv", pd.DataFrame(verification["roc"]).to_csv(index=False))


def _figures(params: Params, loss: str, test: TestSet, images: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> list[str]:
    from lossbench.report.figures import retrieval_grid, tsne_plot

    out = paths.figures_dir(loss)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if params.evaluate.tsne:
        embeddings = np.concatenate([test.query, test.gallery])
        labels = np.concatenate([test.query_labels, test.gallery_labels])
        roles = np.array(["query"] * len(test.query) + ["gallery"] * len(test.gallery))
        tsne_plot(embeddings, labels, roles, out / "tsne.png", seed=params.seed)
        written.append("tsne.png")
    count = min(params.evaluate.examples, len(test.query))
    if count:
        chosen = np.random.default_rng(params.seed).choice(len(test.query), size=count, replace=False)
        k = min(5, ids.shape[1])
        q_labels, g_labels = test.query_labels, test.gallery_labels
        retrieval_grid(
            queries=[np.asarray(images[test.query_rows[i]]) for i in chosen],
            results=[[np.asarray(images[test.gallery_rows[j]]) for j in ids[i, :k]] for i in chosen],
            correct=[[bool(g_labels[j] == q_labels[i]) for j in ids[i, :k]] for i in chosen],
            scores=[[float(s) for s in scores[i, :k]] for i in chosen],
            path=out / "retrieval.png",
        )
        written.append("retrieval.png")
    return written


def evaluate_loss(params: Params, loss: str) -> str:
    """Write ``metrics/losses/<loss>.json``, its ROC/CMC curves and figures; return a summary line."""
    images, manifest = load_processed(paths.PROCESSED)
    test = TestSet.load(loss, manifest)
    topk = tuple(params.evaluate.topk)
    k = min(max(topk), len(test.gallery))

    index = load_index(paths.index_path(loss))
    start = time.perf_counter()
    scores, ids = search(index, test.query, k)
    search_seconds = time.perf_counter() - start
    _, exact_ids = rank_gallery(test.query, test.gallery, k)

    retrieval = evaluate_retrieval(test.query, test.query_labels, test.gallery, test.gallery_labels, topk=topk)
    verification = evaluate_verification(test.query, test.query_labels, test.gallery, test.gallery_labels,
                                         far=tuple(params.evaluate.far))
    metrics = {key: value for key, value in {**retrieval, **verification}.items() if key not in ("cmc", "roc")}
    metrics.update({
        "num_gallery": int(len(test.gallery)),
        f"index_recall_at_{k}": index_recall(ids, exact_ids),
        "search_queries_per_second": round(len(test.query) / max(search_seconds, 1e-9), 1),
    })
    _write_curves(paths.curves_dir(loss), retrieval, verification)
    _figures(params, loss, test, images, ids, scores)
    atomic_write_json(paths.loss_metrics_path(loss), metrics)
    return (f"{loss}: top1={metrics['top1']:.3f} top5={metrics['top5']:.3f} top10={metrics['top10']:.3f} "
            f"score={metrics['score']:.1f} mAP={metrics['mAP']:.3f} ROC-AUC={metrics['roc_auc']:.3f} "
            f"({metrics['num_queries']} queries, {metrics['num_gallery']} gallery)")
