"""The comparison of every configured loss: tables, overlay figures and the headline loss's metrics."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd

from lossbench import paths
from lossbench.config import LossSpec, Params
from lossbench.errors import LossbenchError
from lossbench.io import atomic_write_json
from lossbench.training.checkpoint import load_config

HEADLINE_CURVES = paths.HEADLINE_METRICS.parent / "headline"


def read_loss_metrics(loss: str) -> dict:
    path = paths.loss_metrics_path(loss)
    if not path.is_file():
        raise LossbenchError(f"{path} not found: evaluate loss '{loss}' first (`dvc repro evaluate@{loss}`)")
    return json.loads(path.read_text(encoding="utf-8"))


def table_row(spec: LossSpec, metrics: dict) -> dict:
    """One row of the comparison table: the settings the source projects reported, then the metrics."""
    summary = load_config(paths.model_dir(spec.name)).get("summary", {})
    return {
        "loss": spec.name,
        "frozen": spec.model.freeze,
        "batch_size": spec.train.ids_per_batch * spec.train.images_per_id,
        "epochs": int(summary.get("epochs_trained", 0)),
        "weight_decay": spec.train.weight_decay,
        "dropout": spec.model.dropout,
        **{k: v for k, v in metrics.items() if isinstance(v, (int, float))},
    }


def _curves(loss: str, name: str, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(paths.curves_dir(loss) / f"{name}.csv")
    return frame[x].to_numpy(), frame[y].to_numpy()


def compare(params: Params) -> str:
    """Write metrics/comparison.{md,csv,tex}, figures/comparison/*.png and metrics/metrics.json."""
    from lossbench.report.figures import overlay_curves, score_bar
    from lossbench.report.tables import comparison_frame, to_markdown, write_tables

    specs = params.loss_specs()
    metrics = {spec.name: read_loss_metrics(spec.name) for spec in specs}
    frame = comparison_frame([table_row(spec, metrics[spec.name]) for spec in specs])
    write_tables(frame, paths.COMPARISON)

    figures = paths.FIGURES / "comparison"
    figures.mkdir(parents=True, exist_ok=True)
    score_bar({name: m["score"] for name, m in metrics.items()}, figures / "score.png", highlight=params.loss)
    overlay_curves({name: _curves(name, "cmc", "rank", "accuracy") for name in metrics}, figures / "cmc.png",
                   xlabel="rank", ylabel="identification accuracy", title="CMC (test split)")
    overlay_curves({name: _curves(name, "roc", "fpr", "tpr") for name in metrics}, figures / "roc.png",
                   xlabel="false accept rate", ylabel="true accept rate", title="ROC (test split)", logx=True)

    HEADLINE_CURVES.mkdir(parents=True, exist_ok=True)
    for name in ("roc.csv", "cmc.csv"):
        shutil.copyfile(paths.curves_dir(params.loss) / name, HEADLINE_CURVES / name)
    headline = {"loss": params.loss, **{k: v for k, v in metrics[params.loss].items() if isinstance(v, (int, float))}}
    atomic_write_json(paths.HEADLINE_METRICS, headline)
    print(to_markdown(frame))
    best = max(metrics, key=lambda name: metrics[name]["score"])
    return (f"{len(specs)} losses compared; headline {params.loss} score={metrics[params.loss]['score']:.1f}; "
            f"best {best} score={metrics[best]['score']:.1f}")
