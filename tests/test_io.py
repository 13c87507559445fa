"""Atomic writers of lossbench.core.io: byte-reproducible outputs."""

from __future__ import annotations

import torch

from lossbench.core.io import atomic_torch_save


def test_equal_checkpoints_are_equal_files_wherever_they_are_written(tmp_path):
    """DVC hashes outputs by content: a re-run with the same weights must write the same bytes (torch names the
    archive's records after the path it writes to, which was a random temporary name)."""
    state = {"weight": torch.arange(6.0).reshape(2, 3), "epoch": 3}
    first, second = tmp_path / "a" / "model.pt", tmp_path / "b" / "other.pt"
    atomic_torch_save(state, first)
    atomic_torch_save(state, second)
    assert first.read_bytes() == second.read_bytes()
    loaded = torch.load(second, weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["weight"], state["weight"])
    assert sorted(p.name for p in second.parent.iterdir()) == ["other.pt"]  # no temporary file left
