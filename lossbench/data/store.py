"""The processed data folder: a uint8 image array (images.npy), its manifest (manifest.csv) and their digests
(digest.json), written as one unit: the loader refuses files that do not belong together."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

from lossbench.core.errors import LossbenchError
from lossbench.core.io import atomic_write_text

IMAGES_FILE = "images.npy"
MANIFEST_FILE = "manifest.csv"
DIGEST_FILE = "digest.json"
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
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; like lossbench.core.io, outputs are ordinary readable files
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _digests(directory: Path) -> dict[str, str]:
    return {name: file_digest(directory / name) for name in (IMAGES_FILE, MANIFEST_FILE)}


def write_manifest(directory: str | os.PathLike, manifest: pd.DataFrame) -> dict[str, str]:
    """Write manifest.csv atomically with the contract's columns, in order, then seal the folder: digest.json
    records the digests of images.npy (written first) and manifest.csv. Returns them."""
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise LossbenchError(f"manifest lacks columns {missing}")
    directory = Path(directory)
    atomic_write_text(directory / MANIFEST_FILE, manifest[list(MANIFEST_COLUMNS)].to_csv(index=False))
    digests = _digests(directory)
    atomic_write_text(directory / DIGEST_FILE, json.dumps(digests, indent=2) + "\n")
    return digests


@contextmanager
def staged_folder(directory: str | os.PathLike) -> Iterator[Path]:
    """A new hidden sibling folder that replaces ``directory`` as a whole when the block succeeds; on an error
    it is removed and ``directory`` is left as it was."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.new.", dir=directory.parent))
    try:
        yield staging
        os.chmod(staging, 0o755)  # mkdtemp creates 0700; outputs are ordinary readable folders
        old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
        if directory.exists():
            os.replace(directory, old / directory.name)
        os.replace(staging, directory)
        shutil.rmtree(old)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_digests(
    directory: str | os.PathLike, expected: dict[str, str] | None = None, source: str = DIGEST_FILE
) -> None:
    """Raise LossbenchError unless images.npy and manifest.csv are the files digest.json (or ``expected``, e.g.
    from the data report, named ``source``) describes."""
    directory = Path(directory)
    if expected is None:
        try:
            expected = json.loads((directory / DIGEST_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LossbenchError(
                f"{directory / DIGEST_FILE} is unreadable ({exc}); run `dvc repro preprocess`"
            ) from None
    found = _digests(directory)
    stale = [name for name in found if found[name] != expected.get(name)]
    if stale:
        raise LossbenchError(
            f"{', '.join(str(directory / name) for name in stale)} in {directory} do not belong to the same "
            f"preprocess run as the rest (digests differ from {source}): the processed data is mixed; run "
            "`dvc repro --force preprocess` (or `dvc checkout data/processed`)"
        )


def load_processed(directory: str | os.PathLike) -> tuple[np.ndarray, pd.DataFrame]:
    """Return (images memmap opened read-only, manifest DataFrame) of a processed data folder."""
    directory = Path(directory)
    images_path, manifest_path = directory / IMAGES_FILE, directory / MANIFEST_FILE
    for path in (images_path, manifest_path, directory / DIGEST_FILE):
        if not path.is_file():
            raise LossbenchError(f"processed data {path} not found; run `dvc repro preprocess` first")
    check_digests(directory)
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
