"""A small sweep through DVC's experiment queue: 1 worker with every core vs N workers sharing them.

Two fresh copies of the project with the tiny params of ``bench/pipeline.py`` (each its own DVC cache, so neither
restores the other's runs from the run cache) run the same baseline ``dvc repro``, then queue the same
experiments (``train.epochs`` = 3, 4, 5, 6: every run re-trains) and work through them with
``dvc queue start -j 1`` (torch threads: all cores) or ``-j N`` (``threads: null`` gives each worker
cores // N, ``lossbench.core.runtime.set_threads``). Reported: the wall time of each queue from start to empty and
their ratio. Run it alone on the machine.

    python bench/queue_workers.py [--workers 2] [--epochs 3 4 5 6]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from _common import table  # first: it configures the environment
from pipeline import commit, dvc, make_repo


def queue_seconds(repo: Path, epochs: list[int], workers: int) -> float:
    """Queue one experiment per epoch count, start ``workers`` workers, wait until every task has finished."""
    for count in epochs:
        dvc("exp", "run", "--queue", "-S", f"train.epochs={count}", cwd=repo)
    start = time.perf_counter()
    dvc("queue", "start", "-j", str(workers), cwd=repo)
    while True:
        status, _ = dvc("queue", "status", cwd=repo)
        tasks = [line for line in status.splitlines()[1:] if line.strip() and not line.startswith("Worker status")]
        if tasks and not any(word in line for line in tasks for word in ("Queued", "Running")):
            break
        time.sleep(2)
    seconds = time.perf_counter() - start
    failed = [line for line in tasks if "Failed" in line]
    if failed:
        raise SystemExit(f"queued experiments failed in {repo}: {failed}")
    dvc("queue", "stop", "--kill", cwd=repo)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="queue workers of the parallel case")
    parser.add_argument("--epochs", type=int, nargs="+", default=[3, 4, 5, 6], help="one experiment per value")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lbqueue-"))
    results = {}
    try:
        for workers in (1, args.workers):
            repo = tmp / f"workers{workers}"
            repo.mkdir()
            make_repo(repo, tiny=True)
            dvc("repro", cwd=repo)
            commit(repo, "baseline run")
            results[workers] = queue_seconds(repo, args.epochs, workers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cores = os.cpu_count()
    print(f"{len(args.epochs)} queued experiments (tiny params, train.epochs = {args.epochs}), {cores} cores")
    print(
        table(
            ["queue", "torch threads per worker", "wall s", "vs 1 worker"],
            [
                [f"-j {w}", max(1, (cores or 1) // w), seconds, f"{results[1] / seconds:.2f}×"]
                for w, seconds in results.items()
            ],
        )
    )


if __name__ == "__main__":
    main()
