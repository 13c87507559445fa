"""Large galleries: indexes built from an on-disk memmap, their memory and their recall@10 against Flat.

The gallery is synthetic and clustered (128-d unit vectors around 10^4 random centres, noise 1.0: members
of a cluster have cosine ≈ 0.5, of different clusters 0 ± 0.09), written chunk by chunk into a float32
``.npy`` memmap in a temporary folder (removed at the end), so it is never whole in memory; 1000 queries
come from the same clusters. Every index is built by ``lossbench.index.faiss_index.build_index`` from the memmap
exactly as the pipeline does: trained on a seeded sample of at most ``--train-size`` vectors (default
params.yaml's ``index.train_size``), then filled in chunks. One index at a time is held in memory.

Per gallery size and factory: build seconds, the index's size (serialised bytes, and per vector), the peak
growth of the process's anonymous memory during the build (heap and index; the memmap's file pages are
page cache the kernel can drop, so they are not counted), and per search setting (IVF ``nprobe``, HNSW
``efSearch``) ms per query and recall@10 against the exact top-10 of the Flat index.

    python bench/large_gallery.py [--sizes 1e6 1e7] [--factories Flat IVF4096,Flat IVF4096,PQ32] [--threads 2]

10^7 needs ~9 GB of free memory (building the 4.9 GB Flat index peaks at 8.3 GB), 5.2 GB of disk for the
memmap and 35 minutes on 2 cores; 10^6 (the default) about 9 minutes.
"""

from __future__ import annotations

import argparse
import ctypes
import re
import tempfile
import threading
import time
from pathlib import Path

import faiss
import numpy as np
from _common import clustered, params, recall, setup, table  # first: it configures the environment

from lossbench.index.faiss_index import build_index, search, serialized_bytes, set_search_params

DIM, CLUSTERS, NOISE, K = 128, 10_000, 1.0, 10
SETTINGS = {"IVF": ("nprobe", (8, 32, 128)), "HNSW": ("ef_search", (64, 256))}
"""Search settings (``index.nprobe`` / ``index.ef_search``) measured per index kind; others are searched as built."""
HEADERS = [
    "gallery",
    "factory",
    "search",
    "recall@10",
    "ms/query",
    "build s",
    "index MB",
    "bytes/vector",
    "peak anon MB (build)",
]


def anon_bytes() -> int:
    """Anonymous resident memory of this process (``RssAnon``): heap and FAISS's arrays, no file pages."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"^RssAnon:\s+(\d+) kB", text, re.M).group(1)) * 1024


class PeakAnon:
    """Peak growth of :func:`anon_bytes` while the ``with`` block runs (sampled every 20 ms by a thread)."""

    def __enter__(self) -> PeakAnon:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # heap freed by an earlier index would hide this one's growth
        self.base = self.peak = anon_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, anon_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, anon_bytes())
        self.growth = self.peak - self.base


def write_gallery(path: Path, n: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A clustered gallery of ``n`` vectors written chunk-wise to a ``.npy`` file; returned read-only mapped."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, DIM))
    clustered(n, centres, rng, noise=NOISE, out=out)
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def settings(factory: str) -> tuple[str | None, tuple[int, ...]]:
    """The search parameter measured for ``factory`` and its values (``(None, (0,))``: searched as built)."""
    for kind, setting in SETTINGS.items():
        if kind in factory.split(",")[0]:
            return setting
    return None, (0,)


def measure(gallery: np.ndarray, queries: np.ndarray, factory: str, train_size: int | None, exact: np.ndarray | None):
    """Build ``factory`` from ``gallery``; return the index's rows of the table and its top-k ids per setting."""
    with PeakAnon() as memory:
        start = time.perf_counter()
        index = build_index(gallery, factory, seed=0, train_size=train_size)
        build = time.perf_counter() - start
    size = serialized_bytes(index)
    rows, found = [], None
    name, values = settings(factory)
    for value in values:
        if name is not None:
            set_search_params(index, **{name: value})
        start = time.perf_counter()
        found = search(index, queries, K)[1]
        per_query = (time.perf_counter() - start) / len(queries) * 1e3
        rows.append(
            [
                f"{len(gallery):.0e}".replace("+0", ""),
                factory,
                f"{name}={value}" if name else "",
                1.0 if exact is None else recall(found, exact),
                per_query,
                f"{build:.0f}",
                f"{size / 2**20:.0f}",
                f"{size / len(gallery):.0f}",
                f"{memory.growth / 2**20:.0f}",
            ]
        )
    return rows, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6], help="gallery sizes (1e6 1e7)")
    parser.add_argument(
        "--factories", nargs="+", default=["Flat", "IVF4096,Flat", "IVF4096,PQ32"], help="Flat first: the reference"
    )
    parser.add_argument("--train-size", type=int, default=None, help="default: params.yaml index.train_size")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="where the memmap goes (default: a temporary folder)")
    args = parser.parse_args()
    if args.factories[0] != "Flat":
        parser.error("the first factory must be Flat (the exact reference for recall)")
    train_size = args.train_size or params().index.train_size
    setup(threads=args.threads)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((CLUSTERS, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    queries = clustered(args.queries, centres, rng, noise=NOISE)
    rows = []
    for n in (int(size) for size in args.sizes):
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="large_gallery_") as tmp:
            start = time.perf_counter()
            gallery = write_gallery(Path(tmp) / "gallery.npy", n, centres, rng)
            print(f"{n} vectors written in {time.perf_counter() - start:.0f} s", flush=True)
            exact = None
            for factory in args.factories:
                found_rows, found = measure(gallery, queries, factory, train_size, exact)
                exact = found if exact is None else exact
                rows += found_rows
                print("\n".join(table(HEADERS, found_rows).splitlines()[2:]), flush=True)  # as they come
            del gallery
    print(
        f"\ntop-{K} of {args.queries} queries, {DIM}-d, {CLUSTERS} clusters (noise {NOISE}), train_size {train_size}, "
        f"{args.threads} thread(s), FAISS {faiss.__version__}"
    )
    print(table(HEADERS, rows))


if __name__ == "__main__":
    main()
