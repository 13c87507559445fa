"""Run a stage's ``main`` so that a user error prints one clear line instead of a traceback."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

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


def run_arguments(stage: str) -> tuple[str, int]:
    """The loss and training seed a per-run stage is called with (``python -m stages.<stage> <loss> <seed>``)."""
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        raise SystemExit(f"usage: python -m stages.{stage} <loss> <seed>")
    return sys.argv[1], int(sys.argv[2])
