"""The committed dvc.lock is the lock of this dvc.yaml: one entry per pipeline stage, none for a removed stage.

DVC rewrites only the entries of the stages it runs and never drops the entry of a stage that left dvc.yaml.
Stale entries are not harmless: every stage DVC runs re-parses and re-writes the whole lock file (a round-trip
YAML load and dump, ~0.3 ms per line here), so 48 leftover entries of the old 54-stage pipeline more than doubled
the lock and cost about 2 s per stage of the default study. A missing entry would make ``dvc exp run -S
loss=clip`` on a fresh clone re-run that stage instead of reading the committed baseline (README, *Committed
baseline*). Regenerate the lock with ``rm dvc.lock && dvc repro`` when this fails.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from dvc_stages import load_stages  # tests/dvc_stages.py

ROOT = Path(__file__).resolve().parents[1]


def test_committed_lock_has_exactly_the_pipeline_stages():
    locked = set(yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"])
    stages = {stage.name for stage in load_stages(ROOT) if stage.path == str(ROOT / "dvc.yaml")}
    assert len(stages) >= 10, stages
    assert not locked - stages, f"dvc.lock keeps entries of stages no longer in dvc.yaml: {sorted(locked - stages)}"
    assert not stages - locked, f"dvc.lock has no entry for: {sorted(stages - locked)}"
