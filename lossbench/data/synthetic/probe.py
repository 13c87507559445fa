"""Difficulty probe: how well raw pixels retrieve across domains (an untrained model should do little better)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from lossbench.core.errors import LossbenchError
from lossbench.data.synthetic.dataset import generated_folders


def _pixel_vectors(folders: Sequence[Path], domain: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length, mean-centred raw-pixel vectors of every ``domain`` image, and their identity numbers."""
    rows, labels = [], []
    for label, folder in enumerate(folders):
        for path in sorted((folder / domain).glob("*.png")):
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
            rows.append(pixels.reshape(-1).astype(np.float64))
            labels.append(label)
    if not rows:
        raise LossbenchError(f"no {domain!r} images in the id_* folders; generate the dataset with that domain")
    matrix = np.stack(rows)
    matrix -= matrix.mean(axis=1, keepdims=True)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-12
    return matrix, np.array(labels)


def pixel_retrieval_top1(
    root: str | Path,
    *,
    identities: int | None = None,
    query_domain: str = "photo",
    gallery_domain: str = "render",
    size: int = 64,
) -> float:
    """Difficulty probe: top-1 of raw-pixel cosine retrieval, ``query_domain`` images against ``gallery_domain``.

    Images are resized to ``size`` pixels and each flattened vector is mean-centred before cosine
    similarity; uses the first ``identities`` ``id_*`` folders of ``root`` (all when None).
    """
    folders = generated_folders(Path(root))[:identities]
    queries, query_labels = _pixel_vectors(folders, query_domain, size)
    gallery, gallery_labels = _pixel_vectors(folders, gallery_domain, size)
    nearest = np.argmax(queries @ gallery.T, axis=1)
    return float(np.mean(gallery_labels[nearest] == query_labels))
