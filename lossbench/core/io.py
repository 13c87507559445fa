"""Atomic file writes and seeding shared by every stage."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def _atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary readable files
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with _atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with _atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def atomic_save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Named arrays in one uncompressed ``.npz`` file, written atomically."""
    with _atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through a file handle: given a path, torch names the archive's records after it (here a
    random temporary name), so equal checkpoints differed byte for byte and DVC saw every re-run as a change."""
    import torch

    with _atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)


@contextmanager
def atomic_memmap(path: str | os.PathLike, shape: tuple[int, ...], dtype: Any = np.float32) -> Iterator[np.ndarray]:
    """A writable ``.npy`` memory map that appears at ``path`` only once the block has filled it."""
    with _atomic_path(path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        yield array
        array.flush()
        del array
