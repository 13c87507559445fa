"""Time and peak memory of one run's evaluation at growing size: streaming vs previous vs pytorch-metric-learning.

- streaming: ``lossbench.metrics.streaming.evaluate_streaming`` — ranking + verification metrics and B
  identity-bootstrap replicates of every metric.
- previous: what ``lossbench.evaluation.evaluate_run`` computes without its FAISS index
  (``evaluate_retrieval`` with per-query values, ``evaluate_verification``, the Q×G similarity matrix,
  ``impostors_above``, ``identity_weights``, ``mean_replicates``, ``verification_replicates``). Only up to
  ``--previous-max`` queries (default 3000: 10^4 takes about 11 minutes).
- pml: ``AccuracyCalculator(include=(precision_at_1, r_precision, mean_average_precision_at_r))`` with its
  default FAISS k-NN (k = the largest class): k-NN metrics only, no verification, no replicates.

Each configuration runs in its own process (after generating its data) and reports its wall time and
its peak resident memory (``VmHWM`` of /proc/self/status, data included). Embeddings: n queries and n
gallery items, ``dim`` dims, n / ``per-class`` classes, unit centres + Gaussian noise (norm 1.5), L2-normalised.

    nice -n 19 python bench/evaluation_scale.py [--sizes 1000 10000] [--paths streaming previous pml]
        [--resamples 2000] [--threads 1] [--previous-max 3000]

Measured on the shared 2-core machine (B = 2000, 1 thread; seconds / peak MB): 10^3: streaming 2.8 / 458,
previous 1.7 / 254, pml 2.5 / 711; 3·10^3: 4.1 / 716, 45 / 648, 7.0 / 1187; 10^4: streaming 8.7 / 511,
pml 39.9 / 6670; 10^5 (``--sizes 100000 --paths streaming``): streaming 397 s / 1785 MB. pml is not run at
10^5: it already peaks at 6.7 GB at 10^4. Same top-1 and MAP@R on every path, ROC-AUC equal to 4 decimals.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import ORIGINAL_ENV, table  # first: it configures the environment

PATHS = ("streaming", "previous", "pml")


def data(n: int, dim: int, per_class: int, seed: int = 0):
    """``(query, query labels, gallery, gallery labels)``: n each, n // per_class shared classes."""
    rng = np.random.default_rng(seed)
    classes = max(2, n // per_class)
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw() -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, classes, n)
        x = centres[labels] + np.float32(1.5 / np.sqrt(dim)) * rng.standard_normal((n, dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True), labels

    return (*draw(), *draw())


def _streaming(query, ql, gallery, gl, resamples: int) -> dict:
    from lossbench.metrics.streaming import evaluate_streaming

    return evaluate_streaming(query, ql, gallery, gl, resamples=resamples).metrics


def _previous(query, ql, gallery, gl, resamples: int) -> dict:
    from lossbench.evaluation.bootstrap import (
        identity_weights,
        impostors_above,
        mean_replicates,
        verification_replicates,
    )
    from lossbench.metrics.ranking import cosine_similarity_chunks, evaluate_retrieval
    from lossbench.metrics.verification import evaluate_verification

    exact = evaluate_retrieval(query, ql, gallery, gl, per_query=True)
    verification = evaluate_verification(query, ql, gallery, gl)
    scores = np.empty((len(query), len(gallery)), dtype=np.float32)
    for rows, sim in cosine_similarity_chunks(query, gallery):
        scores[rows] = sim
    genuine = ql[:, None] == gl[None, :]
    impostors_above(scores, genuine)
    weights = identity_weights(ql, resamples, 0)
    for value in exact["per_query"].values():
        mean_replicates(value, weights[:, exact["scored"]])
    verification_replicates(scores, genuine, weights)
    return {**exact, **verification}


def _pml(query, ql, gallery, gl, resamples: int) -> dict:
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    calc = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"), device=torch.device("cpu")
    )
    ref = calc.get_accuracy(query, ql, gallery, gl, ref_includes_query=False)
    return {"top1": ref["precision_at_1"], "map_at_r": ref["mean_average_precision_at_r"]}


def child(path: str, n: int, dim: int, per_class: int, resamples: int, threads: int) -> None:
    """Run one configuration and print ``{seconds, peak_mb, top1, map_at_r, roc_auc}`` as JSON."""
    if path == "pml":
        from _common import setup

        setup(threads=threads)
    else:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    query, ql, gallery, gl = data(n, dim, per_class)
    start = time.perf_counter()
    metrics = {"streaming": _streaming, "previous": _previous, "pml": _pml}[path](query, ql, gallery, gl, resamples)
    seconds = time.perf_counter() - start
    status = Path("/proc/self/status").read_text()
    peak_kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    keys = ("top1", "map_at_r", "roc_auc")
    print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024, **{k: metrics.get(k) for k in keys}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="queries = gallery items")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--per-class", type=int, default=10, help="items per class (query and gallery each)")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1, help="BLAS / OpenMP threads (1: stable on a shared machine)")
    parser.add_argument("--previous-max", type=int, default=3000, help="largest size for the previous path")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.dim, args.per_class, args.resamples, args.threads)
        return
    rows = []
    for n in args.sizes:
        for path in args.paths:
            if path == "previous" and n > args.previous_max:
                rows.append([n, path, "skipped (--previous-max)", "", "", "", ""])
                continue
            cmd = [sys.executable, __file__, "--child", path, str(n), "--dim", str(args.dim)]
            cmd += ["--per-class", str(args.per_class), "--resamples", str(args.resamples)]
            cmd += ["--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=ORIGINAL_ENV)
            if proc.returncode != 0:
                rows.append([n, path, f"failed: {proc.stderr.strip().splitlines()[-1]}", "", "", "", ""])
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            values = [f"{r[k]:.4f}" if r[k] is not None else "–" for k in ("top1", "map_at_r", "roc_auc")]
            rows.append([n, path, r["seconds"], round(r["peak_mb"]), *values])
            print(f"{n} {path}: {r['seconds']:.1f} s, {r['peak_mb']:.0f} MB", file=sys.stderr, flush=True)
    print(
        f"\nevaluation of n queries × n gallery, {args.dim} dims, {args.per_class} per class, "
        f"B = {args.resamples} replicates, threads {args.threads}"
    )
    print(table(["n", "path", "seconds", "peak MB", "top1", "MAP@R", "ROC-AUC"], rows))


if __name__ == "__main__":
    main()
