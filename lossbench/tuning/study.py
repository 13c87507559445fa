"""A loss's study: Optuna's TPE over its search space, median pruning on per-epoch val values, a fixed budget.

The objective is the trainer's monitored value (``train.monitor``, val mAP by default) of the epoch early stopping
keeps, averaged over the ``tune.seeds`` training seeds: the same number that selects a run's epoch selects its
values, and it is measured on the val split only (mAP rather than MAP@R: it is what the trainer already computes
every epoch, and the least noisy of its metrics on a small val split).

Trials run one after another in this process (TPE seeded with ``tune.sampler_seed``), so the same params give the
same trials: the CSV is reproducible byte for byte. A pruned trial reports its epochs at steps
``seed index × epochs + epoch`` (every trial trains the seeds in the same order, so the median compares like with
like); ``tune.pruner.warmup_epochs`` therefore protects the first seed's first epochs. A trial whose loss becomes
non-finite (a too-high learning rate) is recorded as ``fail`` and the study goes on.

Several machines: ``tune.storage`` names Optuna's storage, a journal file (``JournalFileBackend``; any path, on a
file system all workers share) or an RDB URL (``sqlite:///tune.db``, ``postgresql://…``). Every worker running
``python -m stages.tune <loss>`` with the same params joins the same study (named after the loss and a hash of
what it tunes) until it holds ``tune.trials`` trials; trials beyond the budget (two workers asking at once) stop at
once and are left out of the record. The record is then no longer deterministic: which values a trial gets
depends on which trials had finished when it was asked (TPE sees a different history), and so do the pruner's
decisions; the budget and the protocol stay the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna

from lossbench.config.loss_options import Choice, Dimension, Range, search_space
from lossbench.config.params import LossSpec, Params
from lossbench.core.errors import LossbenchError
from lossbench.training.trainer import config_hash
from lossbench.tuning.objective import TrialData
from lossbench.tuning.records import StudyRecord, TrialRow

SUGGEST: dict[type, Callable[[optuna.Trial, str, Any], Any]] = {
    Range: lambda trial, key, dim: trial.suggest_float(key, dim.low, dim.high, log=dim.log),
    Choice: lambda trial, key, dim: trial.suggest_categorical(key, list(dim.choices)),
}
STATES = {
    optuna.trial.TrialState.COMPLETE: "complete",
    optuna.trial.TrialState.PRUNED: "pruned",
    optuna.trial.TrialState.FAIL: "fail",
}


def loss_space(params: Params, spec: LossSpec) -> dict[str, Dimension]:
    """The settings tuned for ``spec`` (empty: nothing to tune)."""
    return search_space(spec.name, spec.type, spec.pin, spec.space)


def trial_spec(params: Params, spec: LossSpec) -> LossSpec:
    """``spec`` as a trial trains it: ``tune.epochs`` epochs when set."""
    return spec.with_values({"train.epochs": params.tune.epochs}) if params.tune.epochs else spec


def make_storage(storage: str | None) -> optuna.storages.BaseStorage | None:
    """None (in memory), an RDB URL (contains ``://``) or a journal file path."""
    if storage is None:
        return None
    if "://" in storage:
        return optuna.storages.RDBStorage(storage)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(storage))


def _space_record(space: dict[str, Dimension]) -> dict[str, Any]:
    return {key: dataclasses.asdict(dim) | {"kind": type(dim).__name__.lower()} for key, dim in space.items()}


def study_name(params: Params, spec: LossSpec, space: dict[str, Dimension]) -> str:
    """The study's name in a shared storage: the loss and a hash of what its trials depend on (not the budget: raising
    tune.trials extends the study)."""
    tune = dataclasses.asdict(params.tune) | {"trials": None, "storage": None}
    key = {"spec": spec.as_dict(), "space": _space_record(space), "tune": tune, "seed": params.seed}
    return f"lossbench-{spec.name}-{config_hash(key)}"


class Objective:
    """The value of one trial: mean over ``tune.seeds`` of the best monitored val value; prunes on the way."""

    def __init__(self, params: Params, spec: LossSpec, space: dict[str, Dimension], data: TrialData):
        self.params, self.spec, self.space, self.data = params, spec, space, data

    def __call__(self, trial: optuna.Trial) -> float:
        budget = self.params.tune.trials
        if trial.number >= budget:  # another worker took the last trial of the budget
            trial.study.stop()
            raise optuna.TrialPruned("over budget")
        values = {key: SUGGEST[type(dim)](trial, key, dim) for key, dim in self.space.items()}
        spec = self.spec.with_values(values)
        epochs, monitor = spec.train.epochs, spec.train.monitor
        scores = []
        for index, seed in enumerate(self.params.tune.seeds):

            def on_epoch(epoch: int, metrics: dict[str, float], offset: int = index * epochs) -> None:
                trial.set_user_attr("epochs", offset + epoch + 1)
                trial.report(metrics[monitor], offset + epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()

            scores.append(self.data.train(spec, seed, on_epoch).best_value)
        return float(np.mean(scores))


def _row(trial: optuna.trial.FrozenTrial, settings: list[str]) -> TrialRow:
    state = STATES.get(trial.state, trial.state.name.lower())
    value = trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None
    values = {key: trial.params[key] for key in settings if key in trial.params}
    return TrialRow(trial.number, state, value, int(trial.user_attrs.get("epochs", 0)), values)


def _log_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    value = f"{trial.value:.4f}" if trial.value is not None else "-"
    values = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    print(f"trial {trial.number}: {STATES.get(trial.state, trial.state.name)} {value} ({values})", flush=True)


def untuned(params: Params, spec: LossSpec, reason: str) -> StudyRecord:
    return StudyRecord(spec.name, [], best={"loss": spec.name, "tuned": False, "reason": reason, "values": {}})


def tune_loss(params: Params, name: str) -> StudyRecord:
    """Run (or join, with ``tune.storage``) the study of loss ``name`` and return its record."""
    spec = params.resolve_loss(name)
    space = loss_space(params, spec)
    if not spec.trains:
        return untuned(params, spec, "the loss does not train")
    if params.tune.trials == 0:
        return untuned(params, spec, "tune.trials is 0: the values in params.yaml are used")
    if not space:
        return untuned(params, spec, f"every tunable setting is pinned (losses.{spec.name}.tune.pin)")
    base = trial_spec(params, spec)
    tune = params.tune
    study = optuna.create_study(
        study_name=study_name(params, base, space),
        storage=make_storage(tune.storage),
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=tune.sampler_seed, n_startup_trials=tune.startup_trials),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=tune.pruner.startup_trials, n_warmup_steps=tune.pruner.warmup_epochs
        ),
    )
    data = TrialData.load(params, base, tune.seeds[0])
    finished = sum(t.number < tune.trials and t.state.is_finished() for t in study.get_trials(deepcopy=False))
    if finished < tune.trials:
        study.optimize(
            Objective(params, base, space, data),
            n_trials=tune.trials - finished,
            catch=(FloatingPointError,),
            callbacks=[_log_trial],
        )
    return study_record(spec, space, study, tune.trials)


def study_record(spec: LossSpec, space: dict[str, Dimension], study: optuna.Study, budget: int) -> StudyRecord:
    """The first ``budget`` trials of ``study`` and the best complete one (ties: the earliest)."""
    settings = list(space)
    trials = sorted((t for t in study.get_trials(deepcopy=False) if t.number < budget), key=lambda t: t.number)
    rows = [_row(t, settings) for t in trials if t.state.is_finished()]
    complete = [row for row in rows if row.state == "complete"]
    if not complete:
        raise LossbenchError(
            f"no trial of {spec.name!r} completed ({len(rows)} pruned or failed); widen losses.{spec.name}.tune.space"
        )
    best = max(complete, key=lambda row: (row.objective, -row.number))
    return StudyRecord(
        spec.name,
        settings,
        rows,
        best={
            "loss": spec.name,
            "tuned": True,
            "monitor": spec.train.monitor,
            "objective": best.objective,
            "trial": best.number,
            "trials": len(rows),
            "values": best.values,
            "space": _space_record(space),
        },
    )
