"""What tuning found, from the trial CSVs: best-so-far curves and how forgiving each loss is."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd


def read_trials(csv: str | Path) -> pd.DataFrame:
    return pd.read_csv(csv).sort_values("number")


def best_so_far(trials: pd.DataFrame) -> np.ndarray:
    """Per trial, the best objective of the complete trials up to it (NaN before the first)."""
    values = trials["objective"].where(trials["state"] == "complete").to_numpy(dtype=float)
    return pd.Series(values).cummax().to_numpy()


def forgiveness(csv: str | Path) -> dict[str, float]:
    """Best and median objective over a loss's complete trials, and the gap: a small gap means most settings in
    the space do about as well as the best (a forgiving loss)."""
    trials = read_trials(csv)
    done = trials.loc[trials["state"] == "complete", "objective"].astype(float)
    best, median = (float(done.max()), float(done.median())) if len(done) else (float("nan"),) * 2
    return {"best": best, "median": median, "gap": best - median, "complete": len(done), "trials": len(trials)}


def best_so_far_plot(csvs: Iterable[str | Path], path: str | Path, monitor: str = "val mAP") -> Path:
    """One line per loss (named after its CSV): the best ``monitor`` so far against the trial number."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for csv in sorted(map(Path, csvs)):
        trials = read_trials(csv)
        ax.plot(trials["number"] + 1, best_so_far(trials), drawstyle="steps-post", label=csv.stem)
    ax.set(xlabel="trial", ylabel=f"best {monitor} so far (val split)", title="Tuning: best so far per loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path
