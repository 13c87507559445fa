"""Which pretrained weights files a backbone setting reads, and their content hashes.

DVC re-runs a stage when a declared dependency changes, but a packaged weights file lives in site-packages,
outside the project. The ``weights`` stage therefore records the hash of every file the params resolve to in
``data/weights.json``; the stages that read weights depend on that record, so new weights re-run them and the
same weights do not. The feature cache's key holds the same hash. Which files those are is
:func:`lossbench.models.resolve.weights_files`; nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from lossbench.models.resolve import weights_files


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_fingerprint(model_cfg: Any) -> str | None:
    """One hash over the weights files a model setting reads (None: random init, or weights from a hub cache)."""
    files = weights_files(model_cfg.backbone, model_cfg.pretrained)
    if not files:
        return None
    return hashlib.sha256("".join(file_digest(f) for f in files).encode()).hexdigest()[:16]


def weights_record(model_cfgs: list[Any]) -> dict[str, Any]:
    """``{"<backbone> <pretrained>": {file name: sha256}}`` for every distinct model setting that reads files."""
    record: dict[str, Any] = {}
    for cfg in model_cfgs:
        files = weights_files(cfg.backbone, cfg.pretrained)
        if files:
            record[f"{cfg.backbone} {cfg.pretrained}"] = {f.name: file_digest(f) for f in files}
    return record
