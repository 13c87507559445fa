"""The loss comparison table: one row per loss, its training setup, its test metrics, its score.

``comparison_frame`` turns plain row dicts into a DataFrame with stable column names (the row keys);
``to_markdown``, ``to_csv`` and ``to_latex`` render it. In the markdown and LaTeX tables rates are
percentages with one decimal, the best value of each metric is bold (highest, lowest for EER), and
"best" is judged on the displayed value, so two cells that read the same are both bold. A metric is
only bolded when at least two losses have a value for it. Missing values show as a dash.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from lossbench.errors import LossbenchError
from lossbench.io import atomic_write_text


@dataclass(frozen=True)
class Column:
    """One table column: its frame key, its markdown and LaTeX headers, how to show it, which is best."""

    key: str
    header: str
    latex: str
    kind: str
    best: str | None = None  # "max" | "min" | None (not a metric)


COLUMNS: tuple[Column, ...] = (
    Column("loss", "Loss", "Loss", "text"),
    Column("frozen", "Frz", "Frz", "flag"),
    Column("batch_size", "B_s", "$B_s$", "int"),
    Column("epochs", "Ep", "Ep", "int"),
    Column("weight_decay", "W_d", "$W_d$", "sci"),
    Column("dropout", "Drp", "Drp", "plain"),
    Column("top1", "top-1", "top-1", "rate", "max"),
    Column("top5", "top-5", "top-5", "rate", "max"),
    Column("top10", "top-10", "top-10", "rate", "max"),
    Column("mAP", "mAP", "mAP", "rate", "max"),
    Column("map_at_r", "MAP@R", "MAP@R", "rate", "max"),
    Column("r_precision", "R-prec", "R-prec", "rate", "max"),
    Column("roc_auc", "ROC-AUC", "ROC-AUC", "rate", "max"),
    Column("eer", "EER", "EER", "rate", "min"),
    Column("score", "Score", "Score", "score", "max"),
)
"""Every column in table order; the frame, the CSV and both rendered tables follow it."""

METRIC_KEYS: tuple[str, ...] = tuple(c.key for c in COLUMNS if c.best)

_DTYPES = {"text": "str", "flag": "boolean", "int": "Int64", "sci": "float64", "plain": "float64",
           "rate": "float64", "score": "float64"}
"""Frame dtype per column kind (nullable bool / int so a missing setting stays missing)."""

_RANGES = {"rate": (0.0, 1.0), "score": (0.0, 1000.0)}
"""Valid value range per metric kind: catches percentages passed where fractions are expected."""


def _sci(value: float) -> str:
    """Shortest exact scientific form: 1e-04, 2.5e-04; zero is 0."""
    if value == 0:
        return "0"
    for digits in range(0, 16):
        text = f"{value:.{digits}e}"
        if float(text) == value:
            return text
    return f"{value:.15e}"


_FORMATS: dict[str, Callable[[Any], str]] = {
    "text": str,
    "int": lambda v: str(int(v)),
    "sci": _sci,
    "plain": lambda v: f"{float(v):g}",
    "rate": lambda v: f"{100.0 * float(v):.1f}",
    "score": lambda v: f"{float(v):.1f}",
}
"""How each column kind is shown; ``flag`` is rendered by each output with its own symbols."""


def _check_value(loss: str, column: Column, value: Any) -> Any:
    """Validate one cell of the input rows; None (or a NaN metric) means missing."""
    if value is None:
        return None
    where = f"comparison row {loss!r}, key {column.key!r}"
    if column.kind == "flag":
        if not isinstance(value, (bool, np.bool_)):
            raise LossbenchError(f"{where}: expected true/false, got {value!r}")
        return bool(value)
    if column.kind == "int":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
            raise LossbenchError(f"{where}: expected a non-negative integer, got {value!r}")
        return int(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise LossbenchError(f"{where}: expected a number, got {value!r}")
    number = float(value)
    if math.isnan(number):
        return None
    low, high = _RANGES.get(column.kind, (0.0, math.inf))
    if not (math.isfinite(number) and low <= number <= high):
        hint = " (rates are fractions 0..1, not percentages)" if column.kind == "rate" else ""
        raise LossbenchError(f"{where}: {number!r} is outside [{low:g}, {high:g}]{hint}")
    return number


def comparison_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """One row per loss (input order) with the columns of ``COLUMNS``; missing values are NA.

    Keys other than the table's columns (e.g. ``cmc``, ``num_queries``) are ignored.
    """
    if not rows:
        raise LossbenchError("comparison table: no rows given — evaluate at least one loss first")
    data: dict[str, list] = {c.key: [] for c in COLUMNS}
    for index, row in enumerate(rows):
        loss = row.get("loss")
        if not isinstance(loss, str) or not loss:
            raise LossbenchError(f"comparison row {index}: 'loss' must be a non-empty name, got {loss!r}")
        if loss in data["loss"]:
            raise LossbenchError(f"comparison table: loss {loss!r} appears twice; give each loss one row")
        data["loss"].append(loss)
        for column in COLUMNS[1:]:
            data[column.key].append(_check_value(loss, column, row.get(column.key)))
    return pd.DataFrame({c.key: pd.array(data[c.key], dtype=_DTYPES[c.kind]) for c in COLUMNS})


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _cells(df: pd.DataFrame, flags: tuple[str, str], missing: str) -> list[list[tuple[str, bool]]]:
    """Rendered ``(text, is_best)`` per cell, rows × COLUMNS; flags are (true, false) symbols."""
    absent = [c.key for c in COLUMNS if c.key not in df.columns]
    if absent:
        raise LossbenchError(f"comparison frame lacks columns {absent}: build it with comparison_frame()")
    grid: list[list[tuple[str, bool]]] = [[] for _ in range(len(df))]
    for column in COLUMNS:
        values = df[column.key].tolist()
        texts = [missing if _is_missing(v) else
                 (flags[0] if v else flags[1]) if column.kind == "flag" else _FORMATS[column.kind](v)
                 for v in values]
        best = _best_texts(texts, values, column)
        for i, text in enumerate(texts):
            grid[i].append((text, text in best))
    return grid


def _best_texts(texts: list[str], values: list, column: Column) -> set[str]:
    """Displayed texts of the best value of a metric column (empty if not a metric or < 2 values)."""
    if column.best is None:
        return set()
    shown = [float(t) for t, v in zip(texts, values) if not _is_missing(v)]
    if len(shown) < 2:
        return set()
    target = max(shown) if column.best == "max" else min(shown)
    return {t for t, v in zip(texts, values) if not _is_missing(v) and float(t) == target}


_ALIGN_MD = {"text": ":---", "flag": ":---:"}


def to_markdown(df: pd.DataFrame) -> str:
    """GitHub markdown table (rates in %, best metric values in bold) followed by a one-line legend."""
    header = "| " + " | ".join(c.header for c in COLUMNS) + " |"
    rule = "| " + " | ".join(_ALIGN_MD.get(c.kind, "---:") for c in COLUMNS) + " |"
    lines = [header, rule]
    for row in _cells(df, ("✓", "✗"), "–"):
        cells = [text.replace("|", "\\|") for text, _ in row]
        lines.append("| " + " | ".join(f"**{t}**" if best else t for t, (_, best) in zip(cells, row)) + " |")
    legend = ("Rates in %, Score 0–1000 (600·top-1 + 300·top-5 + 100·top-10); best of each metric in "
              "**bold** (lowest for EER). Frz = frozen backbone, B_s = batch size, Ep = epochs trained, "
              "W_d = weight decay, Drp = dropout.")
    return "\n".join(lines) + "\n\n" + legend + "\n"


def to_csv(df: pd.DataFrame) -> str:
    """Raw numbers (rates as fractions), one row per loss, columns named as in ``COLUMNS``."""
    return df[[c.key for c in COLUMNS]].to_csv(index=False, lineterminator="\n")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in plain text (loss names)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


DEFAULT_CAPTION = ("Comparison of metric-learning losses on the test split. Rates in \\%, score 0--1000 "
                   "($600\\cdot$top-1 $+$ $300\\cdot$top-5 $+$ $100\\cdot$top-10); best of each metric in "
                   "bold (lowest for EER).")


def to_latex(df: pd.DataFrame, caption: str = DEFAULT_CAPTION, label: str = "tab:loss-comparison") -> str:
    """A complete booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
    spec = "".join("l" if c.kind == "text" else "c" if c.kind == "flag" else "r" for c in COLUMNS)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\setlength{\tabcolsep}{4pt}",
             rf"\caption{{{caption}}}", rf"\label{{{label}}}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(c.latex for c in COLUMNS) + r" \\", r"\midrule"]
    for row in _cells(df, ("yes", "no"), "--"):
        cells = [latex_escape(text) for text, _ in row]
        lines.append(" & ".join(rf"\textbf{{{t}}}" if best else t for t, (_, best) in zip(cells, row)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(df: pd.DataFrame, stem: str | os.PathLike) -> dict[str, Path]:
    """Write ``<stem>.md``, ``<stem>.csv`` and ``<stem>.tex`` atomically; return their paths by format."""
    renderers = {"md": to_markdown, "csv": to_csv, "tex": to_latex}
    paths = {fmt: Path(f"{os.fspath(stem)}.{fmt}") for fmt in renderers}
    for fmt, render in renderers.items():
        atomic_write_text(paths[fmt], render(df))
    return paths
