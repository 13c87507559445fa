"""Tuned values drive the runs: the rule, in one place.

A loss that trains uses the values of ``data/tuning/<loss>/best.json`` whenever ``tune.trials > 0`` (the file must
then exist: ``dvc repro tune@<loss>``); with ``tune.trials: 0`` every run uses params.yaml's values. A pinned
setting (``losses.<loss>.tune.pin``) is never tuned, so its params.yaml value (also one set with ``-S``) always holds; for
every other tunable setting the tuned value wins over params.yaml's. A run's checkpoint config records the values
it trained with.
"""

from __future__ import annotations

from typing import Any

from lossbench.config.params import LossSpec, Params
from lossbench.core.errors import LossbenchError
from lossbench.metrics.catalogue import compact
from lossbench.tuning.records import best_file, read_best


def tuned_values(params: Params, spec: LossSpec) -> dict[str, Any]:
    """Setting → tuned value for ``spec`` (empty when nothing is tuned); keys are options or ``train.<key>``."""
    if params.tune.trials == 0 or not spec.trains:
        return {}
    if not best_file(spec.name).is_file():
        raise LossbenchError(
            f"tune.trials = {params.tune.trials} but {best_file(spec.name)} is missing: tune the loss first "
            f"(`dvc repro tune@{spec.name}`) or use the hand-set values (`-S tune.trials=0`)."
        )
    pinned = set(spec.pin)
    return {key: value for key, value in read_best(spec.name)["values"].items() if key not in pinned}


def tuned_spec(params: Params, spec: LossSpec) -> LossSpec:
    """``spec`` with its tuned values applied (validated like params.yaml's)."""
    return spec.with_values(tuned_values(params, spec))


def options_text(params: Params, spec: LossSpec) -> str:
    """The Options column of the comparison: every option of the loss, tuned values marked ``*`` (the learning
    rate has its own column, :func:`lr_text`)."""
    tuned = tuned_values(params, spec)
    resolved = spec.with_values(tuned)
    items = [
        (f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}") + ("*" if key in tuned else "")
        for key, value in resolved.options.items()
    ]
    return ", ".join(items) or "—"


def lr_text(params: Params, spec: LossSpec) -> str | float:
    """The learning rate a loss's runs train with: the float when it is params.yaml's, ``"7.31e-3*"`` when tuned."""
    tuned = tuned_values(params, spec)
    lr = spec.with_values(tuned).train.lr
    return f"{compact(float(f'{lr:.3g}'))}*" if "train.lr" in tuned else lr
