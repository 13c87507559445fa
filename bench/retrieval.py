"""Search: our FAISS path vs raw FAISS vs a full similarity sort in torch; HNSW / IVF recall and speed.

Gallery: 10^5 and 10^6 vectors of dimension 512 with cluster structure (a few thousand cluster
centres on the unit sphere + Gaussian noise, L2-normalised); queries drawn the same way. For each
size, timed side by side (interleaved rounds, medians), all relative to raw ``faiss.IndexFlatIP``:

- ours: ``lossbench.index.faiss_index.search`` on ``build_index(gallery, "Flat")`` (goal: ≤ 10% overhead);
- torch sort: the source projects' approach, the full query × gallery similarity matrix and
  ``torch.sort`` per query (chunks of queries, so memory stays bounded);
- HNSW32 (efSearch 16 / 64 / 256) and IVF (IVF1024,Flat for 10^5, IVF4096,Flat for 10^6; nprobe 8 / 32):
  recall@10 against the exact top-10 and queries/s relative to Flat.

ANN indexes are built with ``--build-threads`` (k-means on 39 points per list, FAISS's minimum);
searches use ``--threads``. The 10^6 part needs ~12 GB RAM and ~10 minutes on 2 cores (building
HNSW32 alone takes ~6 of them); ``--quick`` runs 10^5 only (~2 minutes).

    python bench/retrieval.py [--quick] [--queries 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
import torch
from _common import clustered, interleaved, recall, setup, table  # first: it configures the environment

from lossbench.index.faiss_index import build_index, search

DIM, K = 512, 10


def torch_sort_search(query: np.ndarray, gallery: torch.Tensor, k: int, chunk: int = 25):
    """Full similarity matrix + ``torch.sort`` (descending) per chunk of queries; the top-k ids."""
    ids = []
    for start in range(0, len(query), chunk):
        sim = torch.from_numpy(query[start : start + chunk]) @ gallery.T
        ids.append(torch.sort(sim, dim=1, descending=True).indices[:, :k])
    return torch.cat(ids).numpy()


def ann_index(
    gallery: np.ndarray, factory: str, rng: np.random.Generator, build_threads: int, search_threads: int
) -> tuple[faiss.Index, float]:
    """An inner-product ``factory`` index of ``gallery`` (IVF trained on a sample) and its build seconds."""
    faiss.omp_set_num_threads(build_threads)
    start = time.perf_counter()
    index = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        nlist = faiss.extract_index_ivf(index).nlist
        index.train(gallery[rng.choice(len(gallery), min(len(gallery), 39 * nlist), replace=False)])
    index.add(gallery)
    seconds = time.perf_counter() - start
    faiss.omp_set_num_threads(search_threads)
    return index, seconds


def run_size(n: int, n_query: int, n_sort: int, repeats: int, args, rng: np.random.Generator) -> list[list]:
    centres = rng.standard_normal((max(2000, n // 200), DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    gallery, query = clustered(n, centres, rng), clustered(n_query, centres, rng)

    ours = build_index(gallery, "Flat")
    raw = faiss.IndexFlatIP(DIM)
    raw.add(gallery)
    exact = raw.search(query, K)[1]
    gallery_t = torch.from_numpy(gallery)
    nlist = 1024 if n <= 100_000 else 4096
    hnsw, hnsw_build = ann_index(gallery, "HNSW32", rng, args.build_threads, args.threads)
    ivf, ivf_build = ann_index(gallery, f"IVF{nlist},Flat", rng, args.build_threads, args.threads)

    def with_params(index: faiss.Index, name: str, value: int):
        def run():
            faiss.ParameterSpace().set_index_parameter(index, name, value)
            return index.search(query, K)[1]

        return run

    cases = {  # name: (search function, queries it handles, build seconds)
        "Flat, raw faiss.IndexFlatIP": (lambda: raw.search(query, K)[1], n_query, None),
        "Flat, lossbench search()": (lambda: search(ours, query, K)[1], n_query, None),
        "torch full sort (source projects)": (lambda: torch_sort_search(query[:n_sort], gallery_t, K), n_sort, None),
        "HNSW32 efSearch=16": (with_params(hnsw, "efSearch", 16), n_query, hnsw_build),
        "HNSW32 efSearch=64": (with_params(hnsw, "efSearch", 64), n_query, hnsw_build),
        "HNSW32 efSearch=256": (with_params(hnsw, "efSearch", 256), n_query, hnsw_build),
        f"IVF{nlist},Flat nprobe=8": (with_params(ivf, "nprobe", 8), n_query, ivf_build),
        f"IVF{nlist},Flat nprobe=32": (with_params(ivf, "nprobe", 32), n_query, ivf_build),
    }
    times = interleaved({name: case[0] for name, case in cases.items()}, repeats=repeats)
    flat_rate = n_query / times["Flat, raw faiss.IndexFlatIP"]
    rows = []
    for name, (run, count, build) in cases.items():
        found = run()
        rows.append(
            [
                f"{n:.0e}".replace("+0", ""),
                name,
                recall(found, exact[:count]),
                (count / times[name]) / flat_rate,
                "" if build is None else f"{build:.0f}",
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10^5 gallery only")
    parser.add_argument("--queries", type=int, default=500, help="queries per search (10^6: 100 at most)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="search threads (1: stable on a shared machine)")
    parser.add_argument("--build-threads", type=int, default=2, help="threads building the ANN indexes")
    args = parser.parse_args()
    setup(threads=args.threads)
    rng = np.random.default_rng(0)
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    rows = []
    for n in sizes:
        n_query = args.queries if n <= 100_000 else min(args.queries, 100)
        rows += run_size(n, n_query, n_sort=min(n_query, 10**8 // n), repeats=args.repeats, args=args, rng=rng)
    print(
        f"top-{K} search, dim {DIM}, clustered data, {args.threads} search thread(s), median of {args.repeats} "
        "interleaved rounds; speed = queries/s relative to raw Flat"
    )
    print(table(["gallery", "method", "recall@10", "speed vs Flat", "build s"], rows))


if __name__ == "__main__":
    main()
