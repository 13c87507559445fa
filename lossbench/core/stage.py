"""Run a stage's ``main`` so that a user error prints one clear line instead of a traceback, and a warning one
line without the source line that raised it."""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from lossbench.core.errors import LossbenchError


@contextmanager
def one_line_warnings(prefix: str) -> Iterator[None]:
    """Inside the block a warning prints as ``<prefix>: warning: <message>`` on stderr (no file, line or code)."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 (warnings API)
        print(f"{prefix}: warning: {message}", file=sys.stderr if file is None else file)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def run_stage(name: str, main: Callable[[], str | None]) -> None:
    """Call ``main``; print its summary line with the elapsed time, or the error and exit with status 2."""
    start = time.perf_counter()
    try:
        with one_line_warnings(f"lossbench {name}"):
            summary = main()
    except LossbenchError as exc:
        print(f"lossbench {name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    elapsed = time.perf_counter() - start
    print(f"lossbench {name}: {summary or 'done'} ({elapsed:.1f}s)")


def loss_argument(stage: str) -> str:
    """The loss a per-loss stage is called with (``python -m stages.<stage> <loss>``)."""
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: python -m stages.{stage} <loss>")
    return sys.argv[1]


def run_arguments(stage: str) -> tuple[str, int]:
    """The loss and training seed a per-run stage is called with (``python -m stages.<stage> <loss> <seed>``)."""
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        raise SystemExit(f"usage: python -m stages.{stage} <loss> <seed>")
    return sys.argv[1], int(sys.argv[2])
