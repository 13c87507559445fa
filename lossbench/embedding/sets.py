"""The embedding sets on disk, readable without torch (index, evaluate and submit only read them).

Sets per loss (``data/embeddings/<loss>/<set>.npy`` + ``<set>_rows.npy`` holding manifest rows):
``query`` / ``gallery`` — the test split; ``challenge_query`` / ``challenge_gallery`` — the unlabelled
challenge test folders when the data has the challenge layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lossbench.core import paths
from lossbench.core.errors import LossbenchError

SETS = {
    "query": ("test", "query"),
    "gallery": ("test", "gallery"),
    "challenge_query": ("challenge", "query"),
    "challenge_gallery": ("challenge", "gallery"),
}


def set_rows(manifest: pd.DataFrame) -> dict[str, np.ndarray]:
    """Manifest rows of each non-empty embedding set, in manifest order."""
    rows = {}
    for name, (split, role) in SETS.items():
        selected = manifest[(manifest["split"] == split) & (manifest["role"] == role)]["row"].to_numpy()
        if len(selected):
            rows[name] = selected
    if "query" not in rows or "gallery" not in rows:
        raise LossbenchError(
            "the processed data has no test queries or no test gallery: raise data.test_ids "
            "or check data.queries_per_id / data.query_domain, then `dvc repro preprocess`"
        )
    return rows


def load_embeddings(directory: str | Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(embeddings, manifest rows)`` of one set written by :func:`lossbench.embedding.extract_embeddings`."""
    directory = Path(directory)
    path = directory / f"{name}.npy"
    if not path.is_file():
        raise LossbenchError(f"{path} not found: run `dvc repro embed@{directory.parent.name}` first")
    return np.load(path, mmap_mode="r"), np.load(directory / f"{name}_rows.npy")


@dataclass
class TestSet:
    """Test query/gallery embeddings of one run with their labels."""

    query: np.ndarray
    gallery: np.ndarray
    query_labels: np.ndarray
    gallery_labels: np.ndarray

    @classmethod
    def load(cls, loss: str, seed: int, manifest: pd.DataFrame) -> TestSet:
        directory = paths.embeddings_dir(loss, seed)
        query, query_rows = load_embeddings(directory, "query")
        gallery, gallery_rows = load_embeddings(directory, "gallery")
        labels = manifest.set_index("row")["label"]
        return cls(
            np.asarray(query),
            np.asarray(gallery),
            labels.loc[query_rows].to_numpy(),
            labels.loc[gallery_rows].to_numpy(),
        )

    def all_items(self) -> tuple[np.ndarray, np.ndarray]:
        """Every test image (queries, then gallery) with its label: the set of the all-vs-all protocol."""
        return np.concatenate([self.query, self.gallery]), np.concatenate([self.query_labels, self.gallery_labels])
