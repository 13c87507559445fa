"""Run a stage's ``main`` so that a user error prints one clear line instead of a traceback."""

from __future__ import annotations

import sys
import time
from typing import Callable

from lossbench.errors import LossbenchError


def run_stage(name: str, main: Callable[[], str | None]) -> None:
    """Call ``main``; print its summary line with the elapsed time, or the error and exit with status 2."""
    start = time.perf_counter()
    try:
        summary = main()
    except LossbenchError as exc:
        print(f"lossbench {name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    elapsed = time.perf_counter() - start
    print(f"lossbench {name}: {summary or 'done'} ({elapsed:.1f}s)")


def loss_argument(stage: str) -> str:
    """The loss name a per-loss stage is called with (``python -m stages.<stage> <loss>``)."""
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: python -m stages.{stage} <loss>")
    return sys.argv[1]
