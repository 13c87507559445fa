"""The processed data folder: a uint8 image array (images.npy) and its manifest (manifest.csv)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

from lossbench.errors import LossbenchError
from lossbench.io import atomic_write_text

IMAGES_FILE = "images.npy"
MANIFEST_FILE = "manifest.csv"
MANIFEST_DTYPES = {
    "row": "int64",
    "path": str,
    "identity": str,
    "label": "int64",
    "split": str,
    "role": str,
    "domain": str,
    "sha1": str,
}
MANIFEST_COLUMNS = tuple(MANIFEST_DTYPES)


def scratch_array(directory: str | os.PathLike, shape: tuple[int, ...]) -> tuple[np.memmap, Path]:
    """A disk-backed uint8 array in a hidden temporary .npy file of ``directory``; the caller deletes it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".scratch.", suffix=".npy", dir=directory)
    os.close(fd)
    return open_memmap(name, mode="w+", dtype=np.uint8, shape=shape), Path(name)


def write_images(
    directory: str | os.PathLike, source: np.ndarray, rows: Sequence[int], chunk_bytes: int = 64 << 20
) -> None:
    """Write ``source[rows]`` to directory/images.npy in chunks of about ``chunk_bytes``, atomically."""
    rows = np.asarray(rows, dtype=np.int64)
    chunk = max(1, chunk_bytes // max(1, int(np.prod(source.shape[1:])) * source.itemsize))
    target = Path(directory) / IMAGES_FILE
    out, tmp = scratch_array(directory, (len(rows), *source.shape[1:]))
    try:
        for start in range(0, len(rows), chunk):
            out[start : start + chunk] = source[rows[start : start + chunk]]
        out.flush()
        del out
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; like lossbench.io, outputs are ordinary readable files
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_manifest(directory: str | os.PathLike, manifest: pd.DataFrame) -> None:
    """Write manifest.csv atomically with the contract's columns, in order."""
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise LossbenchError(f"manifest lacks columns {missing}")
    atomic_write_text(Path(directory) / MANIFEST_FILE, manifest[list(MANIFEST_COLUMNS)].to_csv(index=False))


def load_processed(directory: str | os.PathLike) -> tuple[np.ndarray, pd.DataFrame]:
    """Return (images memmap opened read-only, manifest DataFrame) of a processed data folder."""
    directory = Path(directory)
    images_path, manifest_path = directory / IMAGES_FILE, directory / MANIFEST_FILE
    for path in (images_path, manifest_path):
        if not path.is_file():
            raise LossbenchError(f"processed data {path} not found; run `dvc repro preprocess` first")
    images = np.load(images_path, mmap_mode="r")
    manifest = pd.read_csv(manifest_path, dtype=MANIFEST_DTYPES, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise LossbenchError(f"{manifest_path} lacks columns {missing}; run `dvc repro preprocess` again")
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise LossbenchError(
            f"{images_path} holds {images.dtype} {images.shape}, expected uint8 N x S x S x 3; "
            "run `dvc repro preprocess` again"
        )
    if len(manifest) != len(images) or not np.array_equal(manifest["row"].to_numpy(), np.arange(len(images))):
        raise LossbenchError(
            f"{manifest_path} ({len(manifest)} rows) does not match {images_path} ({len(images)} images); "
            "run `dvc repro preprocess` again"
        )
    return images, manifest
