"""What a study leaves behind: every trial (``metrics/tuning/<loss>.csv``) and the chosen values
(``data/tuning/<loss>/best.json``), written so that the same trials give the same bytes."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lossbench.core.errors import LossbenchError
from lossbench.core.io import atomic_write_json, atomic_write_text

TUNING_DATA = Path("data/tuning")
TUNING_METRICS = Path("metrics/tuning")
FIXED_COLUMNS = ("number", "state", "objective", "epochs")


def best_file(loss: str) -> Path:
    return TUNING_DATA / loss / "best.json"


def trials_file(loss: str) -> Path:
    return TUNING_METRICS / f"{loss}.csv"


@dataclass
class TrialRow:
    """One trial: its number, state (complete | pruned | fail), objective (None unless complete), epochs trained
    (over all its seeds) and the values it tried."""

    number: int
    state: str
    objective: float | None
    epochs: int
    values: dict[str, Any]


@dataclass
class StudyRecord:
    """A loss's study: its trials in number order and what was chosen (``best``: None when nothing was tuned)."""

    loss: str
    settings: list[str]
    trials: list[TrialRow] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)


def _cell(value: Any) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def trials_csv(record: StudyRecord) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*FIXED_COLUMNS, *record.settings])
    for row in record.trials:
        values = [row.values.get(key) for key in record.settings]
        writer.writerow([_cell(v) for v in (row.number, row.state, row.objective, row.epochs, *values)])
    return out.getvalue()


def write_record(record: StudyRecord) -> None:
    atomic_write_text(trials_file(record.loss), trials_csv(record))
    atomic_write_json(best_file(record.loss), record.best)


def read_best(loss: str) -> dict[str, Any]:
    path = best_file(loss)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LossbenchError(f"cannot read the tuned values of {loss!r} from {path}: {exc}") from None
