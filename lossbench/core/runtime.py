"""Where and how torch runs: the device, the model's memory format on it, the number of CPU threads."""

from __future__ import annotations

import os
from pathlib import Path

import torch

QUEUE_WORKER_PIDS = Path(".dvc") / "tmp" / "exps" / "celery"
"""Where DVC's experiment queue keeps one ``dvc-exp-worker-<n>.pid`` per worker (DVC 3, relative to DVC_ROOT)."""


def pick_device() -> torch.device:
    """The first CUDA device when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move the model and switch its conv weights to channels_last (the encoders feed channels_last batches).

    On the CPU too: EfficientNet-Lite0's features came 1.2–1.6× faster in that layout at every batch size
    (``bench/backbone_layout.py``); a model without 4-D weights is unaffected.
    """
    return model.to(device, memory_format=torch.channels_last)


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


def set_threads(threads: int | None) -> int:
    """Set and return torch's intra-op threads: ``threads``, or (None) the cores shared by the queue workers.

    With N queue workers each gets cores // N (at least 1): N jobs of the default thread count on the same cores
    spin in each other's way (README, *Two jobs on two cores*). Outside a queue, None keeps torch's default.
    """
    if threads is None:
        workers = queue_workers()
        if workers == 1:
            return torch.get_num_threads()
        threads = max(1, (os.cpu_count() or 1) // workers)
        if threads != torch.get_num_threads():
            print(f"{workers} DVC queue workers share {os.cpu_count()} cores: {threads} torch thread(s) each")
    torch.set_num_threads(threads)
    return threads
