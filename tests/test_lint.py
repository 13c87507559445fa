"""The style is kept by tools, not by asking: ruff's linter and formatter (pyproject.toml [tool.ruff]) pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ruff() -> str:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: it is pinned in requirements.txt (`make setup`)")
    return found


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff_passes(command):
    result = subprocess.run([ruff(), *command], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, (
        f"ruff {' '.join(command)} found problems (fix: ruff check --fix . && ruff format .):\n{result.stdout}{result.stderr}"
    )


def test_ruff_sees_every_tracked_python_file_of_the_package_and_the_stages():
    """An exclude pattern matches a bare name anywhere in the tree (``data`` also hid ``lossbench/data``): every
    tracked .py file of the package, the stages, the bench and the tests is in the set ruff checks."""
    tracked = subprocess.run(
        ["git", "ls-files", "--", "lossbench", "stages", "bench", "tests"], cwd=ROOT, capture_output=True, text=True
    )
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    expected = {line for line in tracked.stdout.splitlines() if line.endswith(".py")}
    shown = subprocess.run([ruff(), "check", "--show-files", "."], cwd=ROOT, capture_output=True, text=True)
    checked = {
        str(Path(line.strip()).resolve().relative_to(ROOT)) for line in shown.stdout.splitlines() if line.strip()
    }
    assert len(expected) > 50, expected
    assert not expected - checked, f"ruff does not check: {sorted(expected - checked)} (see [tool.ruff] extend-exclude)"
