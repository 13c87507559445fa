"""Per-epoch curves written with dvclive (never letting it touch dvc.yaml or create experiments)."""

from __future__ import annotations

from pathlib import Path


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
