"""The comparison of every configured loss over every training seed: verdicts with uncertainty.

For each metric and loss: the mean over seeds, a 95% interval covering training randomness and test-identity
sampling, the paired difference with the best loss, ties and rank stability (:mod:`lossbench.comparison.verdicts`);
the smallest difference the study can detect; each loss's values as its runs used them (tuned or hand-set) and, when
tuned, what tuning found. Writes ``metrics/comparison.{md,csv,tex}``, the compact DVC metrics
``metrics/summary.json`` (per loss) and figures with uncertainty (``tuning.png``: best so far per trial, when tuned).
Nothing here reads the headline ``loss`` (:mod:`lossbench.comparison.headline` does), so switching it redraws nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lossbench.comparison.verdicts import (
    Verdict,
    detect_multiplier,
    few_events,
    mde,
    resolve_cost,
    summarize,
    typical_difference,
)
from lossbench.config.params import LossSpec, Params
from lossbench.core import paths
from lossbench.core.errors import LossbenchError
from lossbench.core.io import atomic_write_json
from lossbench.metrics import catalogue
from lossbench.metrics.catalogue import HEADLINE_METRIC, metric_info, shown_in

if TYPE_CHECKING:
    from lossbench.comparison.tables import Detectable, Resolve, Tuning


def metric_keys(params: Params) -> list[str]:
    """Every compared metric (the catalogue's, expanded with ``evaluate.topk`` and ``evaluate.far``): exact ranking,
    verification, then what the FAISS index returns."""
    return catalogue.metric_keys({"topk": params.evaluate.topk, "far": params.evaluate.far})


@dataclass
class Runs:
    """Every run's point metrics and bootstrap replicates, by loss then seed."""

    metrics: dict[str, list[dict[str, Any]]]
    replicates: dict[str, list[dict[str, np.ndarray]]]

    @classmethod
    def load(cls, params: Params) -> Runs:
        metrics, replicates = {}, {}
        for loss in params.losses:
            metrics[loss], replicates[loss] = [], []
            for seed in params.seeds:
                path = paths.run_metrics_path(loss, seed)
                if not path.is_file():
                    raise LossbenchError(f"{path} not found: evaluate the run first (`dvc repro evaluate@{loss}`)")
                metrics[loss].append(json.loads(path.read_text(encoding="utf-8")))
                with np.load(paths.replicates_file(loss, seed)) as data:
                    replicates[loss].append({key: data[key] for key in data.files})
        return cls(metrics, replicates)

    def verdicts(self, metric: str, params: Params) -> dict[str, Verdict]:
        point = {loss: [run[metric] for run in runs] for loss, runs in self.metrics.items()}
        reps = {loss: np.stack([run[metric] for run in runs]) for loss, runs in self.replicates.items()}
        first = next(iter(self.metrics.values()))[0]
        return summarize(
            point,
            reps,
            confidence=params.stats.confidence,
            higher_is_better=not metric_info(metric).lower_is_better,
            identities=first["num_identities"],
            seed=params.seed,
        )

    def flagged(self, metric: str, params: Params) -> dict[str, bool]:
        """TAR@FAR cells resting on fewer than ``stats.min_events`` impostor pairs above threshold (any seed)."""
        key = f"impostors_above_{metric}"
        return {
            loss: any(few_events(run[key], params.stats.min_events) for run in runs if key in run)
            for loss, runs in self.metrics.items()
        }


def settings_of(params: Params, spec: LossSpec) -> dict[str, Any]:
    """The settings a row reports (the source projects' table: frozen, batch, epochs, weight decay, dropout), as the
    runs used them: tuned values applied (``tune.trials > 0``) and marked ``*``."""
    from lossbench.tuning.apply import lr_text, options_text, tuned_spec

    used = tuned_spec(params, spec)
    epochs = [summary.get("epochs_trained", 0) for summary in _train_summaries(spec.name, params.seeds)]
    return {
        "frozen": bool(used.model.freeze or not used.trains),
        "batch_size": used.train.ids_per_batch * used.train.images_per_id,
        "epochs": float(np.mean(epochs)) if epochs else 0.0,
        "lr": lr_text(params, spec),
        "weight_decay": used.train.weight_decay,
        "dropout": used.model.dropout,
        "options": options_text(params, spec),
    }


def _train_summaries(loss: str, seeds: list[int]) -> list[dict[str, Any]]:
    """The train stage's ``summary.json`` of each seed that has one."""
    files = [paths.train_log_dir(loss, seed) / "summary.json" for seed in seeds]
    return [json.loads(f.read_text(encoding="utf-8")) for f in files if f.is_file()]


def tuning_of(loss: str, monitor: str, seeds: list[int]) -> Tuning:
    """What the study of ``loss`` found (``metrics/tuning/<loss>.csv``) next to the retrained runs' mean kept-epoch
    ``monitor`` value (``metrics/train/<loss>/seed<seed>/summary.json``; None without any)."""
    from lossbench.comparison.tables import Tuning
    from lossbench.tuning.figures import forgiveness, read_trials
    from lossbench.tuning.records import trials_file

    csv = trials_file(loss)
    if not csv.is_file():
        raise LossbenchError(f"{csv} not found: tune the loss first (`dvc repro tune@{loss}`)")
    found = forgiveness(csv)
    pruned = int((read_trials(csv)["state"] == "pruned").sum())
    values = [float(s[monitor]) for s in _train_summaries(loss, seeds) if monitor in s]
    return Tuning(
        loss=loss,
        trials=int(found["trials"]),
        complete=int(found["complete"]),
        pruned=pruned,
        best=found["best"],
        median=found["median"],
        retrained=float(np.mean(values)) if values else None,
    )


RESOLVE = ("score", 20.0)
"""The difference whose cost comparison.md states: 20 points of score (stored units)."""


def detectability(
    verdicts: dict[str, dict[str, Verdict]], confidence: float, seeds: int, power: float = 0.8
) -> tuple[tuple[Detectable, ...], Resolve | None]:
    """The minimum detectable paired difference of each headline metric (the catalogue's ``summary`` ones) and what
    resolving :data:`RESOLVE` would cost, both from the study's typical difference with the best
    (:func:`~lossbench.comparison.verdicts.typical_difference`); t quantiles at its Welch–Satterthwaite degrees of
    freedom, as the tie intervals use. No cost with one seed (no seed variance to scale)."""
    from lossbench.comparison.tables import Detectable, Resolve

    found, resolve = [], None
    for key in shown_in("summary"):
        typical = typical_difference(verdicts[key]) if key in verdicts else None
        if typical is None:
            continue
        found.append(Detectable(key, mde(typical.se_diff, typical.dof_diff, confidence, power), power))
        metric, delta = RESOLVE
        if key == metric and seeds > 1:
            multiplier = detect_multiplier(typical.dof_diff, confidence, power)
            cost = resolve_cost(delta, typical.diff_seed_var, typical.diff_test_var, seeds, multiplier)
            resolve = Resolve(metric, delta, cost.seeds, cost.identities_factor)
    return tuple(found), resolve


def compare(params: Params) -> str:
    """Write the tables, the DVC metrics and the figures; return a summary line."""
    from lossbench.comparison.tables import Cell, Row, Study, to_markdown, write_tables

    runs = Runs.load(params)
    keys = [k for k in metric_keys(params) if all(k in run for runs_ in runs.metrics.values() for run in runs_)]
    verdicts = {key: runs.verdicts(key, params) for key in keys}
    flags = {key: runs.flagged(key, params) for key in keys if metric_info(key).few_events}
    specs = {spec.name: spec for spec in params.loss_specs()}
    rows = []
    for loss in params.losses:
        cells = {}
        for key in keys:
            v = verdicts[key][loss]
            cells[key] = Cell(
                mean=v.mean,
                low=v.low,
                high=v.high,
                best=v.best,
                tied=v.tied,
                flagged=flags.get(key, {}).get(loss, False),
                diff=None if v.best else v.diff,
                diff_low=None if v.best else v.diff_low,
                diff_high=None if v.best else v.diff_high,
                p_first=v.p_first,
            )
        rows.append(Row(loss=loss, settings=settings_of(params, specs[loss]), cells=cells))
    first = next(iter(runs.metrics.values()))[0]
    tune = params.tune
    trained = [loss for loss in params.losses if specs[loss].trains]
    tuning = tuple(tuning_of(loss, specs[loss].train.monitor, params.seeds) for loss in trained) if tune.trials else ()
    detectable, resolve = detectability(verdicts, params.stats.confidence, len(params.seeds))
    study = Study(
        seeds=len(params.seeds),
        resamples=params.stats.resamples,
        confidence=params.stats.confidence,
        headline_metric=HEADLINE_METRIC,
        index_factory=params.index.factory,
        queries=int(first["num_queries"]),
        identities=int(first["num_identities"]),
        tune_trials=tune.trials,
        tune_seeds=len(tune.seeds),
        monitor=params.train.monitor,
        tuning=tuning,
        detectable=detectable,
        resolve=resolve,
    )
    write_tables(rows, study, paths.COMPARISON)
    _write_summary(params, verdicts)
    headline = verdicts[HEADLINE_METRIC]
    best = next(loss for loss, v in headline.items() if v.best)
    curves = _read_test_curves(params)
    _figures(params, rows, curves, best)
    if tuning:
        from lossbench.tuning.figures import best_so_far_plot
        from lossbench.tuning.records import trials_file

        label = f"val {metric_info(params.train.monitor.removeprefix('val_')).header}"
        best_so_far_plot([trials_file(loss) for loss in trained], paths.FIGURES / "comparison" / "tuning.png", label)
    _plot_tables(params, curves)
    print(to_markdown(rows, study))
    tied = [loss for loss, v in headline.items() if v.tied and not v.best]
    b = headline[best]
    return (
        f"{len(params.losses)} losses x {len(params.seeds)} seeds; best {best} "
        f"{HEADLINE_METRIC} {b.mean:.1f} [{b.low:.1f}, {b.high:.1f}]"
        + (f", tied with it: {', '.join(tied)}" if tied else ", no loss tied with it")
    )


def _write_summary(params: Params, verdicts: dict[str, dict[str, Verdict]]) -> None:
    """``metrics/summary.json``: a few numbers per loss with their intervals, tie with the best and P(best)."""

    def numbers(loss: str) -> dict[str, float]:
        out = {}
        for key in dict.fromkeys([*shown_in("summary"), *shown_in("headline")]):
            if key in verdicts:
                v = verdicts[key][loss]
                out.update({key: round(v.mean, 6), f"{key}_low": round(v.low, 6), f"{key}_high": round(v.high, 6)})
        return out

    summary = {
        loss: {
            **numbers(loss),
            "tied_with_best": bool(verdicts[HEADLINE_METRIC][loss].tied),
            "p_best": round(verdicts[HEADLINE_METRIC][loss].p_first, 4),
        }
        for loss in params.losses
    }
    atomic_write_json(paths.SUMMARY_METRICS, summary)


@dataclass(frozen=True)
class CurveSpec:
    """A test curve every run writes (``metrics/curves/<loss>/seed<seed>/<name>.csv``) and how it is drawn."""

    x: str
    y: str
    xlabel: str
    ylabel: str
    title: str
    logx: bool = False  # drawn on a log x axis: points with x <= 0 are left out


TEST_CURVES = {
    "cmc": CurveSpec("rank", "accuracy", "rank", "identification accuracy", "CMC (test split)"),
    "roc": CurveSpec("fpr", "tpr", "false accept rate", "true accept rate", "ROC (test split)", logx=True),
}


def _read_test_curves(params: Params) -> dict[str, pd.DataFrame]:
    """Every run's test curves, each file read once: curve name -> long table (loss, seed, x, y), in the order
    of ``losses`` and ``seeds``."""
    runs = [(loss, seed) for loss in params.losses for seed in params.seeds]
    tables = {}
    for name, curve in TEST_CURVES.items():
        frames = [
            pd.read_csv(paths.curves_dir(loss, seed) / f"{name}.csv")[[curve.x, curve.y]].assign(loss=loss, seed=seed)
            for loss, seed in runs
        ]
        tables[name] = pd.concat(frames, ignore_index=True)[["loss", "seed", curve.x, curve.y]]
    return tables


def _plot_tables(params: Params, curves: dict[str, pd.DataFrame]) -> None:
    """One long table per curve (``loss``, ``seed``, x, y) for dvc.yaml's top-level plots, which overlay the losses.

    A log-x curve (ROC) keeps the points with x > 0; the validation curves (one row per epoch) cover the trained
    losses only: ``baseline`` has no epochs.
    """
    from lossbench.training.logging import read_epochs

    out = paths.PLOTS
    out.mkdir(parents=True, exist_ok=True)
    for name, table in curves.items():
        curve = TEST_CURVES[name]
        if curve.logx:
            table = table[table[curve.x] > 0]
        table.to_csv(out / f"{name}.csv", index=False, float_format="%.6g")
    runs = [(loss, seed) for loss in params.losses for seed in params.seeds]
    epochs = [(run, read_epochs(paths.train_log_dir(*run))) for run in runs]
    frames = [table.assign(loss=run[0], seed=run[1]) for run, table in epochs if table is not None]
    columns = ["loss", "seed", "epoch", "train_loss", "val_top1", "val_top5", "val_mAP"]
    val = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    val.reindex(columns=columns).to_csv(out / "val.csv", index=False, float_format="%.6g")


def _figures(params: Params, rows: list, curves: dict[str, pd.DataFrame], best: str) -> None:
    from lossbench.comparison.figures import interval_bars, seed_curves

    out = paths.FIGURES / "comparison"
    out.mkdir(parents=True, exist_ok=True)
    for metric in shown_in("figure"):
        interval_bars(rows, metric, out / f"{metric}.png")
    for name, table in curves.items():
        curve = TEST_CURVES[name]
        per_seed = {
            loss: [(run[curve.x].to_numpy(), run[curve.y].to_numpy()) for _, run in runs.groupby("seed", sort=False)]
            for loss, runs in table.groupby("loss", sort=False)
        }
        seed_curves(
            per_seed,
            out / f"{name}.png",
            xlabel=curve.xlabel,
            ylabel=curve.ylabel,
            title=curve.title,
            logx=curve.logx,
        )
    if params.evaluate.tsne or params.evaluate.examples:
        _best_loss_figures(params, out, best)


def _best_loss_figures(params: Params, out, loss: str) -> None:
    """t-SNE and a retrieval grid of the best loss's first seed (the table's winner: no stage reads ``loss``)."""
    from lossbench.comparison.figures import retrieval_grid, tsne_plot
    from lossbench.data.store import load_processed
    from lossbench.embedding.sets import TestSet
    from lossbench.metrics.ranking import SCORE_BLOCK, rank_gallery

    seed = params.seeds[0]
    images, manifest = load_processed(paths.PROCESSED)
    test = TestSet.load(loss, seed, manifest)
    if params.evaluate.tsne:
        embeddings = np.concatenate([test.query, test.gallery])
        labels = np.concatenate([test.query_labels, test.gallery_labels])
        roles = np.array(["query"] * len(test.query) + ["gallery"] * len(test.gallery))
        tsne_plot(
            embeddings,
            labels,
            roles,
            out / "tsne.png",
            seed=params.seed,
            title=f"t-SNE of {loss} (seed {seed}) test embeddings",
        )
    count = min(params.evaluate.examples, len(test.query))
    if count:
        rows = _set_rows(loss, seed)
        chosen = np.random.default_rng(params.seed).choice(len(test.query), size=count, replace=False)
        # each query ranked inside its own score block, so with the scores (and tie order) evaluation saw
        blocks = [slice(i - i % SCORE_BLOCK, min(i - i % SCORE_BLOCK + SCORE_BLOCK, len(test.query))) for i in chosen]
        ranked = [rank_gallery(test.query[block], test.gallery, 5) for block in blocks]
        scores = np.stack([s[i % SCORE_BLOCK] for (s, _), i in zip(ranked, chosen)])
        ids = np.stack([order[i % SCORE_BLOCK] for (_, order), i in zip(ranked, chosen)])
        retrieval_grid(
            queries=[np.asarray(images[rows["query"][i]]) for i in chosen],
            results=[[np.asarray(images[rows["gallery"][j]]) for j in ids[n]] for n in range(count)],
            correct=[
                [bool(test.gallery_labels[j] == test.query_labels[i]) for j in ids[n]] for n, i in enumerate(chosen)
            ],
            scores=[[float(s) for s in scores[n]] for n in range(count)],
            path=out / "retrieval.png",
        )


def _set_rows(loss: str, seed: int) -> dict[str, np.ndarray]:
    from lossbench.embedding.sets import load_embeddings

    return {name: load_embeddings(paths.embeddings_dir(loss, seed), name)[1] for name in ("query", "gallery")}
