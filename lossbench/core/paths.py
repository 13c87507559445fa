"""Where every pipeline artifact lives (relative to the project root), in one place.

A *run* is one loss trained with one training seed; its artifacts live under ``<loss>/seed<seed>``.
"""

from __future__ import annotations

from pathlib import Path

PROCESSED = Path("data/processed")
FEATURES = Path("data/features")
DATA_REPORT = Path("metrics/data.json")
WEIGHTS_RECORD = Path("data/weights.json")
CHECKPOINTS = Path("checkpoints")  # resume state, git- and dvc-ignored
FIGURES = Path("figures")
COMPARISON = Path("metrics/comparison")
PLOTS = Path("metrics/plots")  # long tables (loss, seed, x, y) behind dvc.yaml's top-level plots
HEADLINE_METRICS = Path("metrics/metrics.json")
SUMMARY_METRICS = Path("metrics/summary.json")
SUBMISSION = Path("submission.json")


def run_part(loss: str, seed: int) -> Path:
    """The sub-path of one run: ``<loss>/seed<seed>``."""
    return Path(loss) / f"seed{int(seed)}"


def model_dir(loss: str, seed: int) -> Path:
    return Path("models") / run_part(loss, seed)


def train_log_dir(loss: str, seed: int) -> Path:
    return Path("metrics/train") / run_part(loss, seed)


def checkpoint_file(loss: str, seed: int) -> Path:
    return CHECKPOINTS / run_part(loss, seed) / "last.pt"


def embeddings_dir(loss: str, seed: int) -> Path:
    return Path("data/embeddings") / run_part(loss, seed)


def index_path(loss: str, seed: int) -> Path:
    return Path("data/index") / loss / f"seed{int(seed)}.faiss"


def run_metrics_path(loss: str, seed: int) -> Path:
    """Every metric of one run on the test split (plain JSON; the comparison aggregates them)."""
    return Path("metrics/runs") / loss / f"seed{int(seed)}.json"


def curves_dir(loss: str, seed: int) -> Path:
    return Path("metrics/curves") / run_part(loss, seed)


def evaluation_dir(loss: str, seed: int) -> Path:
    """Per-query values and bootstrap replicates of one run (what the comparison's intervals are built from)."""
    return Path("data/evaluations") / run_part(loss, seed)
