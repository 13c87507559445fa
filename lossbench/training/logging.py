"""Per-epoch curves written with dvclive (never letting it touch dvc.yaml or create experiments)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

CURVES = Path("plots") / "metrics"
"""Where dvclive writes one ``<metric>.tsv`` (columns ``step``, ``<metric>``) under the log directory."""


class DvcLiveLogger:
    """Log each epoch's metrics as dvclive steps under ``directory`` (declared as plots in dvc.yaml)."""

    def __init__(self, directory: str | Path):
        from dvclive import Live

        self.live = Live(dir=str(directory), dvcyaml=False, save_dvc_exp=False, report=None)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self.live.step = epoch
        for name, value in metrics.items():
            if name != "epoch":
                self.live.log_metric(name, float(value))
        self.live.next_step()

    def close(self) -> None:
        self.live.end()


def read_epochs(directory: str | Path) -> pd.DataFrame | None:
    """The logged curves of ``directory`` as one table (``epoch`` 1-based, one column per metric), None if none."""
    files = sorted((Path(directory) / CURVES).glob("*.tsv"))
    if not files:
        return None
    table = pd.read_csv(files[0], sep="\t")
    for path in files[1:]:
        table = table.merge(pd.read_csv(path, sep="\t"), on="step", how="outer")
    return table.assign(epoch=table.pop("step") + 1)
