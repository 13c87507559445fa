"""The headline loss (``loss``): its row of the comparison (the catalogue's headline metrics) as ``metrics/metrics.json``, the file
``dvc metrics diff`` compares between experiments. Reads only ``metrics/summary.json``: switching the headline
re-runs this and ``submit``, nothing else."""

from __future__ import annotations

import json

from lossbench.config.params import Params
from lossbench.core import paths
from lossbench.core.errors import LossbenchError
from lossbench.core.io import atomic_write_json
from lossbench.metrics.catalogue import shown_in


def write_headline(params: Params) -> str:
    """Write ``metrics/metrics.json`` for the headline loss; return a summary line."""
    if not paths.SUMMARY_METRICS.is_file():
        raise LossbenchError(f"{paths.SUMMARY_METRICS} not found: run `dvc repro compare` first")
    summary = json.loads(paths.SUMMARY_METRICS.read_text(encoding="utf-8"))
    if params.loss not in summary:
        raise LossbenchError(
            f"the headline loss {params.loss!r} is not in {paths.SUMMARY_METRICS} (losses {', '.join(summary)}): "
            "run `dvc repro compare`"
        )
    row = summary[params.loss]
    numbers = {key: row[key] for name in shown_in("headline") for key in (name, f"{name}_low", f"{name}_high")}
    verdict = {key: row[key] for key in ("tied_with_best", "p_best")}
    atomic_write_json(paths.HEADLINE_METRICS, {"loss": params.loss, "seeds": len(params.seeds), **numbers, **verdict})
    return f"{params.loss}: score {row['score']:.1f} [{row['score_low']:.1f}, {row['score_high']:.1f}]" + (
        " (tied with the best)" if row["tied_with_best"] else ""
    )
