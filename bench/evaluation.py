"""Our exact retrieval metrics vs pytorch-metric-learning's AccuracyCalculator on the same embeddings.

``lossbench.metrics.ranking.evaluate_retrieval`` (top-1/5/10, mAP, MAP@R, R-precision, CMC in one
call) vs ``AccuracyCalculator(include=(precision_at_1, mean_average_precision_at_r, r_precision))``
with exact cosine k-NN (``CustomKNN(CosineSimilarity())``, as in tests/test_metrics.py) and with its
default k-NN (FAISS). Same values (max abs difference) and the time ratio. Goal: not slower.

Embeddings: class centres on the unit sphere + Gaussian noise, L2-normalised (default 2000 queries ×
10000 gallery × 128 dims, 500 classes).

    python bench/evaluation.py [--queries 2000] [--gallery 10000] [--dim 128] [--classes 500] [--repeats 5]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import interleaved, setup, table  # first: it configures the environment
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

from lossbench.metrics.ranking import evaluate_retrieval

PAIRS = {"top1": "precision_at_1", "map_at_r": "mean_average_precision_at_r", "r_precision": "r_precision"}


def clustered(n_query: int, n_gallery: int, dim: int, classes: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.permutation(np.arange(n) % classes)
        x = centres[labels] + rng.normal(scale=1.8 / np.sqrt(dim), size=(n, dim))  # top-1 ≈ 0.7
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels

    return (*draw(n_query), *draw(n_gallery))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--gallery", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch / BLAS threads (1: stable on a shared machine)")
    args = parser.parse_args()
    setup(threads=args.threads)
    query, q_labels, gallery, g_labels = clustered(args.queries, args.gallery, args.dim, args.classes, seed=0)

    include = tuple(PAIRS.values())
    calculators = {
        "pml (exact cosine kNN)": AccuracyCalculator(
            include=include, knn_func=CustomKNN(CosineSimilarity()), device=torch.device("cpu")
        ),
        "pml (default FAISS kNN)": AccuracyCalculator(include=include, device=torch.device("cpu")),
    }
    cases = {"ours": lambda: evaluate_retrieval(query, q_labels, gallery, g_labels)}
    for name, calc in calculators.items():
        cases[name] = lambda calc=calc: calc.get_accuracy(query, q_labels, gallery, g_labels, ref_includes_query=False)
    times = interleaved(cases, repeats=args.repeats)

    ours = cases["ours"]()
    rows = [["ours (evaluate_retrieval)", 1.0, 0.0, f"{ours['top1']:.4f}", f"{ours['map_at_r']:.4f}"]]
    for name in calculators:
        ref = cases[name]()
        diff = max(abs(ours[key] - ref[pml]) for key, pml in PAIRS.items())
        rows.append(
            [
                name,
                times[name] / times["ours"],
                diff,
                f"{ref['precision_at_1']:.4f}",
                f"{ref['mean_average_precision_at_r']:.4f}",
            ]
        )
    print(
        f"retrieval metrics, {args.queries} queries × {args.gallery} gallery × {args.dim} dims, {args.classes} "
        f"classes, threads {args.threads}, median of {args.repeats} interleaved runs "
        f"(ours: {times['ours']:.2f} s, also computes top-5/10, mAP and the CMC)"
    )
    print(table(["implementation", "time / ours", "max |Δ| vs ours", "P@1", "MAP@R"], rows))


if __name__ == "__main__":
    main()
