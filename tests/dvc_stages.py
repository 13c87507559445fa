"""The pipeline's stages as DVC resolves them, for the tests that check dvc.yaml and dvc.lock."""

from __future__ import annotations

from pathlib import Path


def load_stages(root: Path):
    """The pipeline's stages as DVC resolves them (foreach/matrix expanded, ${...} from params interpolated)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return list(repo.index.stages)
