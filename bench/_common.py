"""Shared helpers of the benchmarks: setup, side-by-side timing (alternating order, medians), tables.

Not a benchmark itself. Every benchmark reports RATIOS of cases timed in the same run, interleaved
round by round (the order alternates so neither side always runs on a warmer or quieter machine),
because absolute times on a shared 2-core machine mean little.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
ORIGINAL_ENV = dict(os.environ)
"""The environment before the settings below (for child processes that must see the user's environment)."""
os.environ.setdefault("TQDM_DISABLE", "1")
# Idle OpenMP workers sleep instead of spinning. With the default policy a busy 2-core machine turns
# every parallel region of a 2-thread run into a ~8 ms wait (spinning workers eat the time slice the
# others need); must be set before torch / faiss load their OpenMP runtimes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def setup(seed: int = 0, threads: int = 1) -> None:
    """Seed numpy/torch and fix the thread count of torch, BLAS and OpenMP (FAISS) alike for every case.

    The benchmarks default to 1 thread: on a shared 2-core machine a second intra-op thread is often
    descheduled, so two-thread timings swing with the neighbours' load (``--threads 2`` measures it).
    """
    import faiss
    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    threadpool_limits(threads)  # OpenBLAS (numpy) and every OpenMP runtime, for the rest of the process
    faiss.omp_set_num_threads(threads)


def interleaved(cases: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each case over ``repeats`` rounds; each round runs every case once, order alternating."""
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            start = time.perf_counter()
            cases[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (floats with 3 significant digits)."""

    def fmt(value: object) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def clustered(
    n: int,
    centres: np.ndarray,
    rng: np.random.Generator,
    noise: float = 1.5,
    block: int = 100_000,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` unit vectors: a random centre each plus isotropic noise of norm ≈ ``noise``.

    Written ``block`` rows at a time into ``out`` (e.g. a ``.npy`` memmap on disk) or a new array. With noise
    1.5 two members of a cluster have cosine ≈ 0.3 and members of different clusters 0 ± 1/√dim: clearly
    clustered, yet fuzzy enough that IVF and HNSW miss some true neighbours.
    """
    out = np.empty((n, centres.shape[1]), dtype=np.float32) if out is None else out
    scale = np.float32(noise / np.sqrt(centres.shape[1]))
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        x = centres[rng.integers(0, len(centres), rows.stop - rows.start)]
        x += scale * rng.standard_normal(x.shape, dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[rows] = x
    return out


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-k (a row of ``exact``) among what was found (-1 = nothing)."""
    k = exact.shape[1]
    return float(np.mean([len(np.intersect1d(a[a >= 0], b)) / k for a, b in zip(found, exact)]))


def params(path: Path = ROOT / "params.yaml"):
    """The project's validated params (``lossbench.config.params.Params``)."""
    from lossbench.config.params import load_params

    return load_params(path)


def make_images(directory: Path, count: int, size: int, seed: int):
    """A read-only uint8 memmap of ``count`` random ``size``² RGB images (content does not change the timings)."""
    import numpy as np

    path = directory / f"images_{size}.npy"
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, size, size, 3))
    array[:] = np.random.default_rng(seed).integers(0, 256, size=array.shape, dtype=np.uint8)
    array.flush()
    return np.load(path, mmap_mode="r")
