"""The committed dvc.lock is the lock of this dvc.yaml: one entry per pipeline stage, none for a removed stage.

DVC rewrites only the entries of the stages it runs and never drops the entry of a stage that left dvc.yaml.
Stale entries are not harmless: every stage DVC runs re-parses and re-writes the whole lock file (a round-trip
YAML load and dump, ~0.3 ms per line here), so 48 leftover entries of the old 54-stage pipeline more than doubled
the lock and cost about 2 s per stage of the default study. A missing entry would make ``dvc exp run -S
loss=clip`` on a fresh clone re-run that stage instead of reading the committed baseline (README, *Committed
baseline*). Regenerate the lock with ``rm dvc.lock && dvc repro`` when this fails.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from dvc_stages import load_stages  # tests/dvc_stages.py

ROOT = Path(__file__).resolve().parents[1]


def test_committed_lock_has_exactly_the_pipeline_stages():
    locked = set(yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"])
    stages = {stage.name for stage in load_stages(ROOT) if stage.path == str(ROOT / "dvc.yaml")}
    assert len(stages) >= 10, stages
    assert not locked - stages, f"dvc.lock keeps entries of stages no longer in dvc.yaml: {sorted(locked - stages)}"
    assert not stages - locked, f"dvc.lock has no entry for: {sorted(stages - locked)}"


def test_every_uncached_output_is_in_git():
    """An output with ``cache: false`` (tuning records, metrics, figures) reaches a fresh clone only through git: a
    stale DVC .gitignore entry would keep it out, and the clone would recompute it (a full re-tune)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    tracked = set(listed.stdout.splitlines())
    uncached = sorted({out.def_path for stage in load_stages(ROOT) for out in stage.outs if not out.use_cache})
    assert uncached, "no uncached outputs found in dvc.yaml"
    missing = [path for path in uncached if path not in tracked and not any(t.startswith(f"{path}/") for t in tracked)]
    ignored = subprocess.run(
        ["git", "ls-files", "--others", "--ignored", "--exclude-standard", "--", *uncached],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert not missing, f"uncached outputs not committed to git: {missing}"
    assert not ignored, f"files of uncached outputs that git ignores: {ignored}"
