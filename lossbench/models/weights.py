"""Which pretrained weights files a backbone setting reads, and their content hashes.

DVC re-runs a stage when a declared dependency changes, but a packaged weights file lives in site-packages,
outside the project. The ``weights`` stage therefore records the hash of every file the params resolve to in
``data/weights.json``; the stages that read weights depend on that record, so new weights re-run them and the
same weights do not. DVC cannot see a file outside the project change, so each of those stages also checks the
files against the record before it starts (:func:`verify_weights`) and stops if they differ. The feature cache's
key holds the same hash. Which files those are is :func:`lossbench.models.resolve.weights_files`; nothing here
imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from lossbench.core import paths
from lossbench.core.errors import LossbenchError
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


def verify_weights(model_cfgs: list[Any], record_path: Path = paths.WEIGHTS_RECORD) -> None:
    """Stop unless every weights file ``model_cfgs`` read still has the hash the ``weights`` stage recorded."""
    expected = weights_record(model_cfgs)
    if not expected:
        return
    recorded = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
    for setting, files in expected.items():
        if recorded.get(setting) != files:
            raise LossbenchError(
                f"the weights of {setting!r} ({', '.join(files)}) are not the ones {record_path} records: they "
                "changed outside the project (or were never recorded); run `dvc repro -f -s weights` and then "
                "`dvc repro`, which re-runs every stage that reads them"
            )
