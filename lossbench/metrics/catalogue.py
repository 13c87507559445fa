"""The metric catalogue: one entry per metric (or parametrised family), read by every step that names one.

An entry gives a metric's key, its headers and label, its kind (a rate 0..1 shown in %, or the 0–1000 challenge
score), its direction, and where it is shown besides the markdown / CSV table, which shows every metric:

* ``summary``: ``metrics/summary.json`` (a few numbers per loss);
* ``headline``: ``metrics/metrics.json`` (the headline loss);
* ``latex``: the columns of the LaTeX table after the headline metric;
* ``figure``: an interval bar chart of the comparison.

Families expand with the evaluation settings: ``top{k}`` (every k of ``evaluate.topk`` and always the challenge's
1, 5, 10) and ``tar_at_far_{far:.0e}`` (every ``evaluate.far``). An entry with ``indexed`` is also measured through
the FAISS index, under the key ``index_`` + its key. Adding a metric is one entry in :data:`_ENTRIES` (or a
:func:`register` call); the tables, the comparison's key list and the figures follow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from lossbench.core.errors import LossbenchError

CHALLENGE_WEIGHTS = {1: 600.0, 5: 300.0, 10: 100.0}
"""Weights of the challenge score: 600·top1 + 300·top5 + 100·top10 (0–1000)."""

INDEX_PREFIX = "index_"
"""Metrics of what the configured FAISS index returns carry this prefix (``index_top1``, ``index_score`` …)."""

HEADLINE_METRIC = "score"
"""The metric the comparison leads with: first column, Δ vs best, P(best), ``tied_with_best``."""

PLACES = frozenset({"summary", "headline", "latex", "figure"})


def topk_key(k: int) -> str:
    """The metric name of top-k accuracy: ``top5``."""
    return f"top{int(k)}"


def far_key(far: float) -> str:
    """The metric name of TAR at ``far``: ``tar_at_far_1e-03``."""
    return f"tar_at_far_{far:.0e}"


def score_formula() -> str:
    """``600·top-1 + 300·top-5 + 100·top-10``, from :data:`CHALLENGE_WEIGHTS`."""
    return " + ".join(f"{weight:g}·top-{k}" for k, weight in CHALLENGE_WEIGHTS.items())


def compact(value: float) -> str:
    """Compact number: 0.3, 64, 1e-4, 2.5e-4 (exponent form below 0.01 and from 10⁴ on)."""
    value = float(value)
    if value == 0 or 1e-2 <= abs(value) < 1e4:
        return f"{value:g}"
    for digits in range(16):
        text = f"{value:.{digits}e}"
        if float(text) == value:
            break
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


@dataclass(frozen=True)
class Metric:
    """How one metric key is named, scaled and shown."""

    key: str
    header: str  # markdown header
    latex: str  # LaTeX header
    label: str  # long name (figure axes, legend)
    kind: str = "rate"  # "rate" (fraction 0..1, shown in %) | "score" (0..1000)
    lower_is_better: bool = False
    shown: frozenset[str] = frozenset()  # places besides the markdown / CSV table (see the module docstring)
    indexed: bool = False  # also measured through the FAISS index (``index_`` + key)
    few_events: bool = False  # can rest on too few events (impostor pairs above threshold): flagged, not ranked

    def __post_init__(self):
        if self.kind not in ("rate", "score") or not self.shown <= PLACES:
            raise LossbenchError(f"metric {self.key!r}: kind must be rate or score and places among {sorted(PLACES)}")

    @property
    def unit(self) -> str:
        return "%" if self.kind == "rate" else "0–1000"

    @property
    def scale(self) -> float:
        """Factor from the stored value to the shown one (rates in %)."""
        return 100.0 if self.kind == "rate" else 1.0

    @property
    def maximum(self) -> float:
        """Largest valid stored value."""
        return 1.0 if self.kind == "rate" else 1000.0

    def format(self, value: float) -> str:
        """One number as shown: one decimal in the shown unit."""
        return f"{self.scale * value:.1f}"


@dataclass(frozen=True)
class Family:
    """Metrics named by a parameter: ``pattern`` (one group) parses a key, ``build`` makes its metric, ``setting``
    names the evaluation setting whose values it expands to, ``sort`` orders members, ``pinned`` gives the places of
    particular members. ``name`` reads like a key (``top<k>``)."""

    name: str
    pattern: str
    parse: Callable[[str], float]
    build: Callable[[float], Metric]
    setting: str
    sort: Callable[[float], float] = float
    always: tuple[float, ...] = ()  # members expanded whatever the setting
    pinned: Mapping[float, frozenset[str]] = field(default_factory=dict)

    def value(self, key: str) -> float | None:
        match = re.fullmatch(self.pattern, key)
        if not match:
            return None
        try:
            return self.parse(match.group(1))
        except ValueError:
            return None

    def metric(self, value: float) -> Metric:
        return replace(self.build(value), shown=self.pinned.get(value, frozenset()))

    def members(self, values: Sequence[float]) -> list[float]:
        if self.always:
            return sorted(set(values) | set(self.always))
        return list(dict.fromkeys(values))


_JSON = frozenset({"summary", "headline"})  # in metrics/summary.json and metrics/metrics.json
_ENTRIES: list[Metric | Family] = [
    Metric("score", "Score", "Score", "challenge score", "score", shown=_JSON | {"figure"}, indexed=True),
    Family(
        "top<k>",
        r"top(\d+)",
        int,
        lambda k: Metric(topk_key(k), f"top-{k}", f"top-{k}", f"top-{k} accuracy", indexed=True),
        setting="topk",
        always=tuple(CHALLENGE_WEIGHTS),
        pinned={1: _JSON | {"latex"}},
    ),
    Metric("mAP", "mAP", "mAP", "mAP", shown=_JSON | {"latex", "figure"}),
    Metric("map_at_r", "MAP@R", "MAP@R", "MAP@R"),
    Metric("r_precision", "R-prec", "R-prec", "R-precision"),
    Metric("roc_auc", "ROC-AUC", "ROC-AUC", "ROC-AUC", shown=frozenset({"headline", "latex"})),
    Metric("eer", "EER", "EER", "EER", lower_is_better=True, shown=frozenset({"headline", "latex"})),
    Family(
        "tar_at_far_<far>",
        r"tar_at_far_(.+)",
        float,
        lambda far: Metric(
            far_key(far), f"TAR@{compact(far)}", f"TAR@{compact(far)}", f"TAR at FAR {compact(far)}", few_events=True
        ),
        setting="far",
        sort=lambda far: -far,  # decreasing FAR
    ),
]


def _name(entry: Metric | Family) -> str:
    return entry.key if isinstance(entry, Metric) else entry.name


def register(entry: Metric | Family, after: str | None = None) -> None:
    """Add an entry (after the entry named ``after``; last by default)."""
    if any(_name(e) == _name(entry) for e in _ENTRIES):
        raise LossbenchError(f"metric catalogue: {_name(entry)!r} is already an entry")
    names = [_name(e) for e in _ENTRIES]
    _ENTRIES.insert(names.index(after) + 1 if after is not None else len(names), entry)


def unregister(name: str) -> None:
    """Remove the entry named ``name`` (a metric key or a family name)."""
    _ENTRIES[:] = [e for e in _ENTRIES if _name(e) != name]


def _resolve(key: str) -> tuple[int, Metric, float]:
    """``(position of its entry, metric, family value or 0)`` of an exact (non-index) key."""
    for position, entry in enumerate(_ENTRIES):
        if isinstance(entry, Metric) and entry.key == key:
            return position, entry, 0.0
        if isinstance(entry, Family) and (value := entry.value(key)) is not None:
            return position, replace(entry.metric(value), key=key), entry.sort(value)
    known = ", ".join(_name(e) for e in _ENTRIES)
    raise LossbenchError(f"unknown metric {key!r}; known: {known}, and {INDEX_PREFIX}<one of these>")


def metric_info(key: str) -> Metric:
    """The :class:`Metric` of a key, ``index_`` + key included (measured through the FAISS index)."""
    if key.startswith(INDEX_PREFIX):
        base = _resolve(key[len(INDEX_PREFIX) :])[1]
        return Metric(
            key,
            f"idx {base.header}",
            f"idx {base.latex}",
            f"{base.label} (FAISS index)",
            base.kind,
            base.lower_is_better,
            few_events=base.few_events,
        )
    return _resolve(key)[1]


def order(key: str) -> tuple:
    """Canonical column order: catalogue order (family members by their sort value), then the index metrics."""
    index = key.startswith(INDEX_PREFIX)
    position, _, value = _resolve(key[len(INDEX_PREFIX) :] if index else key)
    return index, position, value


def metric_keys(settings: Mapping[str, Sequence[float]]) -> list[str]:
    """Every metric key of a study, in catalogue order, then the ``index_`` ones; ``settings`` gives each family's
    values by its ``setting`` (e.g. ``{"topk": [1, 5], "far": [1e-3]}``)."""
    exact = []
    for entry in _ENTRIES:
        if isinstance(entry, Metric):
            exact.append(entry)
        else:
            exact += [entry.metric(v) for v in entry.members(settings.get(entry.setting, ()))]
    return [m.key for m in exact] + [INDEX_PREFIX + m.key for m in exact if m.indexed]


def shown_in(place: str) -> tuple[str, ...]:
    """The keys shown in ``place`` (see the module docstring), in catalogue order."""
    if place not in PLACES:
        raise LossbenchError(f"unknown place {place!r}; places: {sorted(PLACES)}")
    keys = []
    for entry in _ENTRIES:
        if isinstance(entry, Metric):
            keys += [entry.key] if place in entry.shown else []
        else:
            keys += [entry.metric(v).key for v, places in entry.pinned.items() if place in places]
    return tuple(keys)
