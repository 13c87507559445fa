"""Where and how a stage runs: one thread policy for every library, the device, the model's memory format.

The policy (:func:`set_threads`) is applied once at the start of every stage from the one parameter
``threads`` and covers torch's intra-op pool, FAISS's OpenMP pool and the BLAS/OpenMP pools numpy and
scikit-learn use (through threadpoolctl), so no library spins more threads than the stage was given. torch and
FAISS are configured only when the stage imports them: the index and evaluation stages never load torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

QUEUE_WORKER_PIDS = Path(".dvc") / "tmp" / "exps" / "celery"
"""Where DVC's experiment queue keeps one ``dvc-exp-worker-<n>.pid`` per worker (DVC 3, relative to DVC_ROOT)."""

_THREADPOOL_LIMITS = []  # the active threadpoolctl limit (kept alive: it holds the BLAS/OpenMP setting)


def _alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def queue_workers(environ: dict[str, str] | None = None) -> int:
    """How many DVC experiment-queue workers are alive (``dvc queue start -j N``); 1 outside a queued experiment.

    DVC runs a queued experiment with ``DVC_EXP_NAME`` and ``DVC_ROOT`` (the project) set; each worker's pid file
    lives under ``DVC_ROOT``/:data:`QUEUE_WORKER_PIDS` (stale files of stopped workers are not counted).
    """
    environ = os.environ if environ is None else environ
    if "DVC_EXP_NAME" not in environ or "DVC_ROOT" not in environ:
        return 1
    pid_files = (Path(environ["DVC_ROOT"]) / QUEUE_WORKER_PIDS).glob("dvc-exp-worker-*.pid")
    return max(1, sum(_alive(path) for path in pid_files))


def thread_count(threads: int | None) -> int:
    """The stage's thread count: ``threads``, or (None) the cores shared by the live DVC queue workers.

    With N queue workers each gets cores // N (at least 1): N jobs of the default thread count on the same cores
    spin in each other's way (docs/performance.md, *Two jobs on two cores*).
    """
    if threads is not None:
        return int(threads)
    return max(1, (os.cpu_count() or 1) // queue_workers())


def set_threads(threads: int | None) -> int:
    """Apply the thread policy to torch and FAISS (when imported) and to the BLAS/OpenMP pools; return the count."""
    count = thread_count(threads)
    if count != (os.cpu_count() or 1) and threads is None:
        print(f"{queue_workers()} DVC queue workers share {os.cpu_count()} cores: {count} thread(s) each")
    from threadpoolctl import threadpool_limits

    _THREADPOOL_LIMITS[:] = [threadpool_limits(limits=count)]
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(count)
    return count


def pick_device():
    """The first CUDA device when there is one, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(model, device):
    """Move the model and switch its conv weights to channels_last (the encoders feed channels_last batches).

    On the CPU too: EfficientNet-Lite0's features came 1.2–1.6× faster in that layout at every batch size
    (``bench/backbone_layout.py``); a model without 4-D weights is unaffected.
    """
    import torch

    return model.to(device, memory_format=torch.channels_last)
