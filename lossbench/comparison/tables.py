"""The loss comparison table with uncertainty: markdown, CSV and LaTeX renderings of the same rows.

Input is plain data (no torch, no pandas): one :class:`Row` per loss holding its settings and one
:class:`Cell` per metric (mean over training seeds, confidence interval, verdicts against the best loss),
and one :class:`Study` with the facts the legend needs (seeds, resamples, confidence, ...).

Rendering rules, the same in every format that shows them:

* rates are fractions 0..1 in the input and the CSV, percentages with one decimal in markdown / LaTeX;
  the challenge score is 0..1000 with one decimal;
* a cell reads ``mean ± h`` where h is the half-width of the interval (the wider side if it is
  asymmetric); the CSV keeps the exact bounds;
* **bold** marks the best loss of a metric *and every loss tied with it*; a flagged cell (too few events
  behind it) carries a ``†`` and is never bold;
* settings identical for every loss leave the table for one "All losses: ..." line; varying ones stay;
* ``index_*`` metrics (what the FAISS index returns) are shown only when they differ from the exact ones;
* under the table, when the :class:`Study` has them: how the values were chosen (tuned on val or hand-set), the
  smallest difference the study detects per headline metric and what resolving a given one would cost, and what
  tuning found per loss (in the objective's units, formatted like the table).

The LaTeX table needs ``\\usepackage{booktabs}`` and ``\\usepackage{tabularx}`` (for the per-loss settings
under the metrics) and fits a one-column article page (345pt) with loss names up to about 20 characters.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path

from lossbench.core.errors import LossbenchError
from lossbench.core.io import atomic_write_text
from lossbench.metrics.catalogue import INDEX_PREFIX, Metric, compact, metric_info, order, score_formula, shown_in

# --------------------------------------------------------------------------------------------------
# Input contract


@dataclass(frozen=True)
class Cell:
    """One metric of one loss: mean over seeds, its confidence interval and its verdicts."""

    mean: float
    low: float
    high: float
    best: bool  # highest mean (lowest for EER)
    tied: bool  # the paired-difference interval with the best includes 0
    flagged: bool = False  # rests on too few events: marked, never bold
    diff: float | None = None  # mean − best's mean (None for the best itself)
    diff_low: float | None = None
    diff_high: float | None = None
    p_first: float | None = None  # share of resamples in which this loss ranks first


@dataclass(frozen=True)
class Row:
    """One loss: its settings (``frozen``, ``batch_size``, ``epochs``, ``lr``, ``weight_decay``, ``dropout``,
    ``options`` or any other key) and its cells by metric key (see :func:`metric_info`)."""

    loss: str
    settings: dict[str, object] = field(default_factory=dict)
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass(frozen=True)
class Study:
    """Table-level facts for the legend and caption."""

    seeds: int  # S training seeds per loss
    resamples: int  # R bootstrap resamples
    confidence: float  # e.g. 0.95
    headline_metric: str  # the metric shown first, with Δ vs best and P(best) ("score")
    index_factory: str  # faiss.index_factory string, e.g. "Flat"
    queries: int  # test queries
    identities: int  # test identities (the bootstrap's unit)
    tune_trials: int | None = None  # tune.trials (0: hand-set values; None: not stated)
    tune_seeds: int = 1  # training seeds per trial (the objective is their mean)
    monitor: str = "val_mAP"  # the tuning objective (train.monitor)
    tuning: tuple[Tuning, ...] = ()  # what tuning found, per trained loss
    detectable: tuple[Detectable, ...] = ()  # smallest detectable difference per headline metric
    resolve: Resolve | None = None  # what resolving a given difference would cost


@dataclass(frozen=True)
class Tuning:
    """One loss's study on the val split (values are the objective's, e.g. val mAP as a fraction)."""

    loss: str
    trials: int
    complete: int
    pruned: int
    best: float  # best objective over the complete trials (selected on val: optimistic)
    median: float  # median over the complete trials (forgiveness: a small gap to the best = a forgiving loss)
    retrained: float | None  # mean over the training seeds of the kept epoch's val value, tuned values applied


@dataclass(frozen=True)
class Detectable:
    """The smallest paired difference of ``metric`` the study detects (80% power, 5% level), stored units."""

    metric: str
    mde: float
    power: float = 0.8


@dataclass(frozen=True)
class Resolve:
    """What detecting a difference ``delta`` of ``metric`` (stored units) would cost, each change alone."""

    metric: str
    delta: float
    seeds: float | None  # seeds per loss at the current test set (None: the test term alone is too large)
    identities_factor: float | None  # × the test identities at the current seeds (None: the seed term is too large)


# --------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class Setting:
    """How one setting is named in a column and phrased in the "All losses" line."""

    key: str
    header: str
    show: Callable[[object], str]
    phrase: Callable[[object], str]


def _epochs(value: object) -> str:
    number = float(value)  # type: ignore[arg-type]
    return str(int(number)) if number.is_integer() else f"{number:.1f}"


def _plain(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Real):
        return compact(float(value))
    return str(value)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "frozen",
        "Backbone",
        lambda v: "frozen" if v else "fine-tuned",
        lambda v: "frozen backbone" if v else "fine-tuned backbone",
    ),
    Setting("batch_size", "Batch", lambda v: str(int(v)), lambda v: f"batch {int(v)}"),  # type: ignore[call-overload]
    Setting("epochs", "Epochs", _epochs, lambda v: f"{_epochs(v)} epochs (mean over seeds)"),
    Setting("lr", "LR", _plain, lambda v: f"lr {_plain(v)}"),
    Setting("weight_decay", "WD", _plain, lambda v: f"weight decay {_plain(v)}"),
    Setting("dropout", "Dropout", _plain, lambda v: f"dropout {_plain(v)}"),
    Setting("options", "Options", str, lambda v: f"options {v}" if str(v).strip(" -–—") else "no loss options"),
)
_SETTINGS = {s.key: s for s in SETTINGS}


def _setting(key: str) -> Setting:
    return _SETTINGS.get(key) or Setting(key, key, _plain, lambda v: f"{key} {_plain(v)}")


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


@dataclass(frozen=True)
class _Split:
    constant: list[tuple[Setting, object]]  # identical for every loss (and not None)
    varying: list[Setting]  # differ between losses: table columns


def _split_settings(rows: Sequence[Row]) -> _Split:
    keys = [s.key for s in SETTINGS if any(s.key in r.settings for r in rows)]
    keys += [k for r in rows for k in r.settings if k not in _SETTINGS]
    keys = list(dict.fromkeys(keys))
    constant, varying = [], []
    for key in keys:
        values = [r.settings.get(key) for r in rows]
        if all(v is None for v in values):
            continue
        if all(_same(v, values[0]) for v in values):
            constant.append((_setting(key), values[0]))
        else:
            varying.append(_setting(key))
    return _Split(constant, varying)


# --------------------------------------------------------------------------------------------------
# Validation


_TOL = 1e-9


def _number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def validate(rows: Sequence[Row], study: Study) -> list[str]:
    """Check the input; return the metric keys present, in table order (headline first)."""
    if not rows:
        raise LossbenchError("comparison table: no rows given — evaluate at least one loss first")
    seen: set[str] = set()
    for index, row in enumerate(rows):
        if not isinstance(row, Row):
            raise LossbenchError(f"comparison table: row {index} is a {type(row).__name__}, expected a Row")
        if not isinstance(row.loss, str) or not row.loss.strip():
            raise LossbenchError(f"comparison table: row {index} needs a non-empty loss name, got {row.loss!r}")
        if row.loss in seen:
            raise LossbenchError(f"comparison table: loss {row.loss!r} appears twice; give each loss one row")
        seen.add(row.loss)
        for key, value in row.settings.items():
            if value is not None and not isinstance(value, (bool, str, Real)):
                raise LossbenchError(
                    f"comparison table: loss {row.loss!r}, setting {key!r}: expected a "
                    f"number, true/false or text, got {type(value).__name__}"
                )
        for key, cell in row.cells.items():
            _check_cell(row.loss, metric_info(key), cell)
    _check_study(study)
    keys = sorted({k for r in rows for k in r.cells}, key=order)
    if study.headline_metric not in keys:
        raise LossbenchError(
            f"comparison table: headline metric {study.headline_metric!r} is in no row; rows have {keys}"
        )
    return [study.headline_metric] + [k for k in keys if k != study.headline_metric]


def _check_cell(loss: str, metric: Metric, cell: Cell) -> None:
    where = f"comparison table: loss {loss!r}, metric {metric.key!r}"
    if not isinstance(cell, Cell):
        raise LossbenchError(f"{where}: expected a Cell, got {type(cell).__name__}")
    for name in ("mean", "low", "high"):
        value = getattr(cell, name)
        if not _number(value) or not math.isfinite(value):
            raise LossbenchError(f"{where}: {name} must be a finite number, got {value!r}")
    top = metric.maximum
    if not 0.0 <= cell.mean <= top:
        hint = " — rates are fractions 0..1, not percentages" if metric.kind == "rate" else ""
        raise LossbenchError(f"{where}: mean {cell.mean!r} is outside [0, {top:g}]{hint}")
    if not cell.low - _TOL <= cell.mean <= cell.high + _TOL:
        raise LossbenchError(
            f"{where}: the interval [{cell.low!r}, {cell.high!r}] must contain the mean "
            f"{cell.mean!r} (low ≤ mean ≤ high)"
        )
    diffs = (cell.diff, cell.diff_low, cell.diff_high)
    if any(d is not None for d in diffs):
        if not all(_number(d) and math.isfinite(d) for d in diffs):  # type: ignore[arg-type]
            raise LossbenchError(
                f"{where}: diff, diff_low and diff_high must be given together as finite numbers, got {diffs}"
            )
        if not cell.diff_low - _TOL <= cell.diff <= cell.diff_high + _TOL:  # type: ignore[operator]
            raise LossbenchError(
                f"{where}: the difference interval [{cell.diff_low!r}, {cell.diff_high!r}] "
                f"must contain the difference {cell.diff!r}"
            )
    if cell.p_first is not None and not (_number(cell.p_first) and 0.0 <= cell.p_first <= 1.0):
        raise LossbenchError(f"{where}: p_first is a share in [0, 1], got {cell.p_first!r}")
    if not isinstance(cell.best, bool) or not isinstance(cell.tied, bool) or not isinstance(cell.flagged, bool):
        raise LossbenchError(f"{where}: best, tied and flagged must be true/false")


def _check_study(study: Study) -> None:
    if not isinstance(study, Study):
        raise LossbenchError(f"comparison table: expected a Study, got {type(study).__name__}")
    problems = []
    for name in ("seeds", "resamples", "queries", "identities"):
        value = getattr(study, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "seeds" else 0):
            problems.append(
                f"{name} must be a{' positive' if name == 'seeds' else ' non-negative'} integer, got {value!r}"
            )
    if not (_number(study.confidence) and 0.0 < study.confidence < 1.0):
        problems.append(f"confidence must be in (0, 1), got {study.confidence!r}")
    if problems:
        raise LossbenchError("comparison table: study " + "; ".join(problems))
    metric_info(study.headline_metric)


# --------------------------------------------------------------------------------------------------
# Shared formatting


FLAG = "†"


def format_value(metric: Metric, value: float) -> str:
    """One number as shown: rates in % with one decimal, the score with one decimal."""
    return metric.format(value)


def half_width(cell: Cell) -> float:
    """Half-width of the interval: the wider side when it is asymmetric."""
    return max(cell.mean - cell.low, cell.high - cell.mean, 0.0)


def format_diff(metric: Metric, cell: Cell) -> str:
    """``+1.2 [-0.3, 2.7]`` (signed, shown units), ``best`` for the best loss, ``–`` when unknown."""
    if cell.best:
        return "best"
    if cell.diff is None:
        return "–"
    s = metric.scale
    return f"{s * cell.diff:+.1f} [{s * cell.diff_low:+.1f}, {s * cell.diff_high:+.1f}]"  # type: ignore[operator]


def format_share(p: float | None) -> str:
    """A share as a whole percentage; ``<1%`` / ``>99%`` instead of a misleading 0% / 100%."""
    if p is None:
        return "–"
    if 0.0 < p < 0.005:
        return "<1%"
    if 0.995 < p < 1.0:
        return ">99%"
    return f"{100.0 * p:.0f}%"


def is_bold(cell: Cell) -> bool:
    """Bold = the best or tied with it, and resting on enough events."""
    return (cell.best or cell.tied) and not cell.flagged


def _pct(confidence: float) -> str:
    return f"{100.0 * confidence:g}%"


@dataclass(frozen=True)
class _Layout:
    """What the rendered tables show, decided once from the rows."""

    headline: Metric
    metrics: list[Metric]  # table columns, headline first (index ones only when they differ)
    settings: _Split
    index_keys: list[str]  # index_* keys present in the input
    index_differs: bool
    flagged: bool  # some shown cell is flagged
    asymmetric: bool  # some shown interval is asymmetric


def _index_differs(rows: Sequence[Row], index_keys: list[str]) -> bool:
    for row in rows:
        for key in index_keys:
            cell, exact = row.cells.get(key), row.cells.get(key[len(INDEX_PREFIX) :])
            if cell is None:
                continue
            if exact is None or any(
                abs(a - b) > _TOL for a, b in ((cell.mean, exact.mean), (cell.low, exact.low), (cell.high, exact.high))
            ):
                return True
    return False


def _layout(rows: Sequence[Row], study: Study) -> _Layout:
    keys = validate(rows, study)
    index_keys = [k for k in keys if k.startswith(INDEX_PREFIX)]
    differs = _index_differs(rows, index_keys)
    shown = [k for k in keys if differs or not k.startswith(INDEX_PREFIX) or k == study.headline_metric]
    cells = [r.cells[k] for r in rows for k in shown if k in r.cells]
    return _Layout(
        headline=metric_info(study.headline_metric),
        metrics=[metric_info(k) for k in shown],
        settings=_split_settings(rows),
        index_keys=index_keys,
        index_differs=differs,
        flagged=any(c.flagged for c in cells),
        asymmetric=any(abs((c.mean - c.low) - (c.high - c.mean)) > 1e-6 * max(1.0, abs(c.mean)) for c in cells),
    )


def _constant_line(split: _Split) -> str:
    return ", ".join(s.phrase(v) for s, v in split.constant)


def _index_sentence(layout: _Layout, study: Study) -> str:
    if not layout.index_keys:
        return ""
    factory = f" ({study.index_factory})" if study.index_factory else ""
    if layout.index_differs:
        return (
            f"Columns marked “idx” are measured through the FAISS index{factory}, which is approximate; "
            f"the other ranking metrics rank the whole gallery exactly."
        )
    return (
        f"The FAISS index{factory} returns the exact ranking: its top-k and score equal the exact ones "
        f"and are not repeated."
    )


def _interval_sentence(study: Study, asymmetric: bool, where: str) -> str:
    conf = _pct(study.confidence)
    wide = " (the wider side where it is asymmetric)" if asymmetric else ""
    sampling = (
        f"bootstrap over the {study.identities} test identities, {study.resamples} resamples; {study.queries} queries"
    )
    if study.seeds == 1:
        return (
            f"Each cell: the value of the single training seed ± the half-width{wide} of its {conf} "
            f"confidence interval, which covers test sampling only ({sampling}), not training "
            f"randomness{where}."
        )
    return (
        f"Each cell: mean over {study.seeds} training seeds ± the half-width{wide} of its {conf} confidence "
        f"interval, which covers training randomness and test sampling ({sampling}){where}."
    )


def _units_sentence(metrics: Sequence[Metric]) -> str:
    parts = []
    if any(m.kind == "rate" for m in metrics):
        parts.append("rates in %")
    if any(m.kind == "score" for m in metrics):
        parts.append(f"score 0–1000 ({score_formula()})")
    lower = [m.header for m in metrics if m.lower_is_better]
    if lower:
        parts.append(f"{', '.join(lower)}: lower is better")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "." if text else ""


def _values_sentence(study: Study) -> str:
    """How each loss's values were chosen: tuned on val (how) or hand-set; empty when not stated."""
    if study.tune_trials is None:
        return ""
    if study.tune_trials == 0:
        return "Hand-set values (tune.trials: 0)."
    seeds = f"{study.tune_seeds} tuning seed{'s' * (study.tune_seeds != 1)}"
    return (
        f"Tuned: {study.tune_trials} trials per loss on val (objective: {_monitor_label(study)}, mean over {seeds}); "
        f"* marks a tuned value."
    )


def _monitor_metric(study: Study) -> Metric:
    return metric_info(study.monitor.removeprefix("val_"))


def _monitor_label(study: Study) -> str:
    return f"val {_monitor_metric(study).header}"


def _points(metric: Metric) -> str:
    return "percentage points" if metric.kind == "rate" else "points"


def _detect_text(study: Study) -> str:
    """What the study can detect and what resolving a given difference would cost; empty without the numbers."""
    if not study.detectable:
        return ""
    power = _pct(study.detectable[0].power)
    found = ", ".join(
        f"{m.label} {format_value(m, d.mde)} {_points(m)}" for d in study.detectable for m in [metric_info(d.metric)]
    )
    text = (
        f"**What this study can detect**: the smallest difference between two losses found with {power} power at the "
        f"{_pct(1.0 - study.confidence)} level (paired, from the variances of this study's typical difference with "
        f"the best): {found}."
    )
    r = study.resolve
    if r is not None:
        m = metric_info(r.metric)
        s, n = study.seeds, study.identities
        head = f"To resolve {format_value(m, r.delta)} {_points(m)} of {m.label}"
        if r.seeds is not None and r.identities_factor is not None and r.seeds <= s and r.identities_factor <= 1.0:
            text += f" {head}: the current {s} seeds and {n} test identities suffice."
        else:
            by_seeds = (
                f"≈ {math.ceil(r.seeds)} seeds per loss at the current {n} test identities"
                if r.seeds is not None
                else f"no number of seeds at the current {n} test identities (test sampling alone is too noisy)"
            )
            by_ids = (
                f"≈ {r.identities_factor:.1f}× the test identities (≈ {math.ceil(r.identities_factor * n)}) at {s} seeds"
                if r.identities_factor is not None
                else f"no number of test identities at {s} seeds (the seed term alone is too large)"
            )
            text += f" {head}: {by_seeds}, or {by_ids}."
    return text


def _md_tuning(study: Study) -> str:
    """The tuning section: per loss, trials, the best and median objective and the retrained seeds' value."""
    if not study.tuning:
        return ""
    metric, label = _monitor_metric(study), _monitor_label(study)
    lines = [
        "**What tuning found** (val split; best so far per trial: figures/comparison/tuning.png):",
        "",
        f"| Loss | Trials (complete / pruned) | Best {label} | Median {label} | Retrained {label} |",
        "| :--- | ---: | ---: | ---: | ---: |",
    ]
    for t in study.tuning:
        best, median = (format_value(metric, t.best), format_value(metric, t.median)) if t.complete else ("–", "–")
        retrained = "–" if t.retrained is None else format_value(metric, t.retrained)
        lines.append(
            f"| {_md_escape(t.loss)} | {t.trials} ({t.complete} / {t.pruned}) | {best} | {median} | {retrained} |"
        )
    unit = " in %" if metric.kind == "rate" else ""
    lines += [
        "",
        f"- {label}{unit}. Best: the best complete trial's objective, selected on val (optimistic). Median: over the "
        f"complete trials (a small gap to the best: a forgiving loss). Retrained: mean over the {study.seeds} "
        f"training seeds of the kept epoch's {label}, trained with the tuned values.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Markdown


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_cell(metric: Metric, cell: Cell | None) -> str:
    if cell is None:
        return "–"
    text = f"{format_value(metric, cell.mean)} ± {format_value(metric, half_width(cell))}"
    if cell.flagged:
        return text + " " + FLAG
    return f"**{text}**" if is_bold(cell) else text


def to_markdown(rows: Sequence[Row], study: Study) -> str:
    """GitHub markdown: the table, the "All losses" line, the index sentence and a legend."""
    layout = _layout(rows, study)
    head = layout.headline
    headers = ["Loss", head.header, "Δ vs best", "P(best)"] + [m.header for m in layout.metrics[1:]]
    headers += [s.header for s in layout.settings.varying]
    align = [":---"] + ["---:"] * (len(headers) - 1 - len(layout.settings.varying))
    align += [":---" if s.key == "options" else "---:" for s in layout.settings.varying]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    for row in rows:
        h = row.cells.get(head.key)
        cells = [
            _md_escape(row.loss),
            _md_cell(head, h),
            format_diff(head, h) if h else "–",
            format_share(h.p_first if h else None),
        ]
        cells += [_md_cell(m, row.cells.get(m.key)) for m in layout.metrics[1:]]
        cells += [
            _md_escape(s.show(row.settings[s.key])) if row.settings.get(s.key) is not None else "–"
            for s in layout.settings.varying
        ]
        lines.append("| " + " | ".join(cells) + " |")
    out = "\n".join(lines) + "\n\n"
    if layout.settings.constant:
        out += f"All losses: {_md_escape(_constant_line(layout.settings))}.\n"
    if values := _values_sentence(study):
        out += _md_escape(values) + "\n"
    if layout.index_keys:
        out += _index_sentence(layout, study) + "\n"
    conf = _pct(study.confidence)
    units = "percentage points" if head.kind == "rate" else "score points"
    resampled = "test identities and seeds" if study.seeds > 1 else "test identities"
    legend = [
        _interval_sentence(study, layout.asymmetric, "; exact bounds in comparison.csv"),
        _units_sentence(layout.metrics),
        f"**Bold**: the best loss of each metric and every loss tied with it (the {conf} interval of its paired "
        f"difference to the best includes 0).",
        f"Δ vs best: paired difference of the {head.label} to the best loss (this loss − best, {units}) with "
        f"its {conf} interval. P(best): share of the {study.resamples} resamples ({resampled}) "
        f"in which the loss has the best {head.label}; it describes how stable the top rank is, the tie "
        f"verdict is the calibrated statement.",
    ]
    if layout.flagged:
        legend.append(
            f"{FLAG}: rests on too few events (e.g. TAR at a low FAR set by a handful of impostor "
            f"pairs above the threshold) to be ranked: shown, never bold."
        )
    if any(s.key == "epochs" for s in layout.settings.varying):
        legend.append("Epochs: epochs trained (early stopping), mean over seeds.")
    out += "\n" + "\n".join(f"- {line}" for line in legend) + "\n"
    sections = [text for text in (_detect_text(study), _md_tuning(study)) if text]
    return out + "".join(f"\n{text.rstrip()}\n" for text in sections)


# --------------------------------------------------------------------------------------------------
# CSV


TUNING_COLUMNS = ("tune_trials", "tune_complete", "tune_pruned", "tune_best", "tune_median", "tune_retrained")


def csv_columns(rows: Sequence[Row], study: Study) -> list[str]:
    """The CSV header: loss, the settings, the tuning numbers (:data:`TUNING_COLUMNS`, when tuned), then per metric ``<m>``, ``_low``, ``_high``, ``_best``,
    ``_tied``, ``_flagged`` and, when some row has them, ``_diff``, ``_diff_low``, ``_diff_high``,
    ``_p_first``. Every metric given is written, index ones included."""
    keys = validate(rows, study)
    settings = list(
        dict.fromkeys(
            [s.key for s in SETTINGS if any(s.key in r.settings for r in rows)] + [k for r in rows for k in r.settings]
        )
    )
    columns = ["loss", *settings, *(TUNING_COLUMNS if study.tuning else ())]
    for key in keys:
        columns += [key, f"{key}_low", f"{key}_high", f"{key}_best", f"{key}_tied", f"{key}_flagged"]
        present = [r.cells[key] for r in rows if key in r.cells]
        if any(c.diff is not None for c in present):
            columns += [f"{key}_diff", f"{key}_diff_low", f"{key}_diff_high"]
        if any(c.p_first is not None for c in present):
            columns.append(f"{key}_p_first")
    return columns


def to_csv(rows: Sequence[Row], study: Study) -> str:
    """Raw numbers, one row per loss: rates as fractions, exact interval bounds, booleans as True/False,
    missing values empty (the best loss has no difference)."""
    columns = csv_columns(rows, study)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    tuning = {t.loss: t for t in study.tuning}
    for row in rows:
        record: dict[str, object] = {"loss": row.loss, **row.settings}
        if t := tuning.get(row.loss):
            numbers = (t.trials, t.complete, t.pruned, t.best, t.median, t.retrained)
            record.update(zip(TUNING_COLUMNS, numbers))
        for key, cell in row.cells.items():
            record.update(
                {
                    key: cell.mean,
                    f"{key}_low": cell.low,
                    f"{key}_high": cell.high,
                    f"{key}_best": cell.best,
                    f"{key}_tied": cell.tied,
                    f"{key}_flagged": cell.flagged,
                    f"{key}_diff": cell.diff,
                    f"{key}_diff_low": cell.diff_low,
                    f"{key}_diff_high": cell.diff_high,
                    f"{key}_p_first": cell.p_first,
                }
            )
        writer.writerow(["" if record.get(c) is None else record[c] for c in columns])
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------
# LaTeX


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "–": "--",
    "—": "---",
    "±": r"$\pm$",
    "·": r"$\cdot$",
    "“": "``",
    "”": "''",
    "†": r"$^\dagger$",
    "Δ": r"$\Delta$",
    "≤": r"$\le$",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in plain text (loss names, options)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_cell(metric: Metric, cell: Cell | None) -> str:
    if cell is None:
        return "--"
    mean = format_value(metric, cell.mean)
    mean = rf"\textbf{{{mean}}}" if is_bold(cell) else mean
    flag = r"$^\dagger$" if cell.flagged else ""
    return rf"{mean}{flag}\,{{\scriptsize$\pm${format_value(metric, half_width(cell))}}}"


def _latex_caption(layout: _Layout, study: Study, shown: list[Metric], flagged: bool, with_settings: bool) -> str:
    conf = _pct(study.confidence)
    parts = [
        "Metric-learning losses on the test split.",
        _interval_sentence(study, layout.asymmetric, ""),
        _units_sentence(shown),
        f"Bold: the best loss and every loss tied with it (the {conf} interval of the paired difference includes 0).",
    ]
    if flagged:
        parts.append(f"{FLAG}: too few events to be ranked, never bold.")
    if layout.settings.constant:
        parts.append(f"All losses: {_constant_line(layout.settings)}.")
    parts.append(_values_sentence(study))
    if layout.index_keys:
        parts.append(
            _index_sentence(layout, study)
            if not layout.index_differs
            else "Top-k through the FAISS index differs from the exact ranking: see comparison.md."
        )
    if with_settings:
        parts.append("Per-loss settings below.")
    parts.append(
        "Differences to the best, P(best), the other metrics and the exact bounds: comparison.md and comparison.csv."
    )
    return latex_escape(" ".join(p for p in parts if p))


def to_latex(
    rows: Sequence[Row],
    study: Study,
    caption: str | None = None,
    label: str = "tab:loss-comparison",
    metrics: Sequence[str] | None = None,
) -> str:
    """A booktabs ``table`` float that fits a one-column page (345pt): loss, the headline metric and
    ``metrics`` (those present; default: the catalogue's ``latex`` ones), each ``mean ±h`` with h in ``\\scriptsize``; then the per-loss settings that
    vary in a small ``tabularx`` under it. The caption (generated unless given) carries the legend and the
    settings common to every loss. Four metrics after the headline fit with loss names up to about 20
    characters; Δ vs best and P(best) stay in the markdown and CSV."""
    layout = _layout(rows, study)
    by_key = {m.key: m for m in layout.metrics}
    metrics = shown_in("latex") if metrics is None else metrics
    shown = [layout.headline] + [by_key[k] for k in metrics if k in by_key and k != layout.headline.key]
    flagged = any(r.cells[m.key].flagged for r in rows for m in shown if m.key in r.cells)
    varying = layout.settings.varying
    text = caption if caption is not None else _latex_caption(layout, study, shown, flagged, bool(varying))
    spec = "@{}l" + "r" * len(shown) + "@{}"
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\setlength{\tabcolsep}{3.5pt}",
        rf"\caption{{{text}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(["Loss", *(latex_escape(m.latex) for m in shown)]) + r" \\",
        r"\midrule",
    ]
    for row in rows:
        cells = [latex_escape(row.loss), *(_latex_cell(m, row.cells.get(m.key)) for m in shown)]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if varying:
        options = [s for s in varying if s.key == "options"]
        others = [s for s in varying if s.key != "options"]
        # the options wrap in a ragged-right X column filling the line; without options a plain tabular
        env, width = ("tabularx", r"{\linewidth}") if options else ("tabular", "")
        spec = "@{}l" + "r" * len(others) + (r">{\raggedright\arraybackslash}X" if options else "") + "@{}"
        lines += [
            r"\par\medskip",
            r"\footnotesize",
            rf"\begin{{{env}}}{width}{{{spec}}}",
            r"\toprule",
            " & ".join(["Loss", *(s.header for s in others + options)]) + r" \\",
            r"\midrule",
        ]
        for row in rows:
            values = [_latex_setting(s, row.settings.get(s.key)) for s in others + options]
            lines.append(" & ".join([latex_escape(row.loss), *values]) + r" \\")
        lines += [r"\bottomrule", rf"\end{{{env}}}"]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _latex_setting(setting: Setting, value: object) -> str:
    if value is None:
        return "--"
    text = latex_escape(setting.show(value))
    return text.replace(",", r",\allowbreak{}") if setting.key == "options" else text


# --------------------------------------------------------------------------------------------------
# Files


def write_tables(rows: Sequence[Row], study: Study, stem: str | os.PathLike) -> dict[str, Path]:
    """Write ``<stem>.md``, ``<stem>.csv`` and ``<stem>.tex`` atomically; return their paths by format."""
    texts = {"md": to_markdown(rows, study), "csv": to_csv(rows, study), "tex": to_latex(rows, study)}
    paths = {fmt: Path(f"{os.fspath(stem)}.{fmt}") for fmt in texts}
    for fmt, text in texts.items():
        atomic_write_text(paths[fmt], text)
    return paths
