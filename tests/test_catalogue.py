"""The metric catalogue: every compared key has an entry, and one entry is all a new metric needs."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest

from lossbench.comparison.compare import metric_keys
from lossbench.comparison.tables import Cell, Row, Study, to_csv, to_latex, to_markdown
from lossbench.config.params import load_params
from lossbench.core.errors import LossbenchError
from lossbench.metrics import catalogue
from lossbench.metrics.catalogue import INDEX_PREFIX, Metric, metric_info, order, score_formula, shown_in
from lossbench.metrics.ranking import challenge_score, evaluate_retrieval, per_query_values
from lossbench.metrics.verification import evaluate_verification

ROOT = Path(__file__).resolve().parents[1]
STUDY = Study(
    seeds=3, resamples=100, confidence=0.95, headline_metric="score", index_factory="Flat", queries=20, identities=10
)


def rows_with(extra: str | None = None) -> list[Row]:
    """Two losses with a few metrics (and ``extra``, a rate): ``a`` is best everywhere."""
    keys = ["score", "top1", "r_precision", "eer"] + ([extra] if extra else [])
    rows = []
    for i, loss in enumerate(("a", "b")):
        cells = {}
        for key in keys:
            mean = (0.2 + 0.1 * i) * (1000.0 if key == "score" else 1.0)
            cells[key] = Cell(mean, 0.9 * mean, 1.1 * mean, best=i == 0, tied=i == 0)
        rows.append(Row(loss, {}, cells))
    return rows


def md_table(text: str) -> list[list[str]]:
    """Header and body rows of a markdown table (the alignment row left out)."""
    rows = [line[2:-2].split(" | ") for line in text.splitlines() if line.startswith("| ")]
    return rows[:1] + rows[2:]


def params_with(topk, far):
    params = load_params(ROOT / "params.yaml")
    return dataclasses.replace(params, evaluate=dataclasses.replace(params.evaluate, topk=topk, far=far))


def run_metric_keys(topk, far) -> set[str]:
    """The scalar metrics one run writes (exact ranking, verification, through the index) on toy embeddings."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(12), 2)
    emb = rng.normal(size=(24, 8)) + 2 * rng.normal(size=(12, 8))[labels]
    query, gallery = emb[::2], emb[1::2]
    scalars = {**evaluate_retrieval(query, labels[::2], gallery, labels[1::2], topk=topk)}
    scalars.update(evaluate_verification(query, labels[::2], gallery, labels[1::2], far=far))
    scalars.update(
        {INDEX_PREFIX + k: float(np.mean(v)) for k, v in per_query_values(np.zeros(12, dtype=int), topk).items()}
    )
    return {k for k, v in scalars.items() if isinstance(v, float) and not k.startswith("num_")}


@pytest.mark.parametrize("topk, far", [([1, 5, 10], [1e-3, 1e-4]), ([3, 20], [1e-2, 2.5e-4])])
def test_every_compared_key_has_an_entry_and_covers_what_a_run_writes(topk, far):
    keys = metric_keys(params_with(topk, far))
    assert len(keys) == len(set(keys)) and all(metric_info(k).key == k for k in keys)
    assert set(keys) == run_metric_keys(topk, far)
    assert sorted(keys, key=order) == keys  # already in table order


def test_places_direction_and_score_formula():
    assert shown_in("summary") == ("score", "top1", "mAP")
    assert shown_in("headline") == ("score", "top1", "mAP", "roc_auc", "eer")
    assert shown_in("latex") == ("top1", "mAP", "roc_auc", "eer")
    assert shown_in("figure") == ("score", "mAP")
    keys = metric_keys(params_with([1, 5, 10], [1e-3, 1e-4]))
    assert [k for k in keys if metric_info(k).lower_is_better] == ["eer"]
    assert [k for k in keys if metric_info(k).few_events] == ["tar_at_far_1e-03", "tar_at_far_1e-04"]
    assert score_formula() == "600·top-1 + 300·top-5 + 100·top-10"
    assert challenge_score(0.5, 0.8, 0.9) == sum(
        w * v for w, v in zip(catalogue.CHALLENGE_WEIGHTS.values(), (0.5, 0.8, 0.9))
    )
    with pytest.raises(LossbenchError, match="unknown place"):
        shown_in("slides")


@pytest.fixture
def recall_at_2():
    entry = Metric("recall_at_2", "R@2", "R@2", "recall at 2", lower_is_better=True, shown=frozenset({"latex"}))
    catalogue.register(entry, after="r_precision")
    yield entry
    catalogue.unregister(entry.key)


def test_one_entry_puts_a_new_metric_in_the_keys_and_every_table(recall_at_2):
    keys = metric_keys(params_with([1, 5, 10], [1e-3]))
    assert keys[keys.index("r_precision") + 1] == "recall_at_2"
    rows = rows_with("recall_at_2")
    md = to_markdown(rows, STUDY)
    headers, a, b = md_table(md)
    column = headers.index("R@2")
    assert headers[column - 1] == "R-prec" and (a[column], b[column]) == ("**20.0 ± 2.0**", "30.0 ± 3.0")
    assert "R@2, EER: lower is better" in md and "R@2" not in to_markdown(rows_with(), STUDY)
    assert {"recall_at_2", "recall_at_2_low", "recall_at_2_tied"} <= set(
        next(csv.reader(io.StringIO(to_csv(rows, STUDY))))
    )
    assert "R@2" in to_latex(rows, STUDY).split("\\midrule")[0]
    assert shown_in("latex") == ("top1", "mAP", "recall_at_2", "roc_auc", "eer")
    with pytest.raises(LossbenchError, match="already an entry"):
        catalogue.register(recall_at_2)


def test_unregistered_metric_is_unknown_again(recall_at_2):
    catalogue.unregister(recall_at_2.key)
    with pytest.raises(LossbenchError, match="unknown metric 'recall_at_2'"):
        metric_info("recall_at_2")
    assert "recall_at_2" not in metric_keys(params_with([1], [1e-3]))
