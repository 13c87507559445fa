"""Where every pipeline artifact lives (relative to the project root), in one place."""

from __future__ import annotations

from pathlib import Path

PROCESSED = Path("data/processed")
FEATURES = Path("data/features")
DATA_REPORT = Path("metrics/data.json")
CHECKPOINTS = Path("checkpoints")  # resume state, git- and dvc-ignored
FIGURES = Path("figures")
COMPARISON = Path("metrics/comparison")
HEADLINE_METRICS = Path("metrics/metrics.json")
SUBMISSION = Path("submission.json")


def model_dir(loss: str) -> Path:
    return Path("models") / loss


def train_log_dir(loss: str) -> Path:
    return Path("metrics/train") / loss


def embeddings_dir(loss: str) -> Path:
    return Path("data/embeddings") / loss


def index_path(loss: str) -> Path:
    return Path("data/index") / f"{loss}.faiss"


def loss_metrics_path(loss: str) -> Path:
    return Path("metrics/losses") / f"{loss}.json"


def curves_dir(loss: str) -> Path:
    return Path("metrics/curves") / loss


def figures_dir(loss: str) -> Path:
    return FIGURES / loss
