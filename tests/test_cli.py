"""The ``lossbench`` command: installed by ``make``, with a version and plain-text help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import lossbench
from lossbench.apps.cli import COMMANDS, build_parser, main


def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"lossbench {lossbench.__version__}"


def test_help_texts_are_plain_text():
    parser = build_parser()
    texts = [parser.format_help()] + [COMMANDS[name].help for name in COMMANDS]
    assert not [text for text in texts if "``" in text or ":data:" in text or ":func:" in text]


def test_make_installs_the_command_into_the_environment():
    """`make` (setup) installs the project in editable mode next to the interpreter that runs the tests."""
    command = Path(sys.executable).parent / "lossbench"
    assert command.is_file(), f"{command} missing: run `make setup` (pip install --no-deps -e .)"
    result = subprocess.run([str(command), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"lossbench {lossbench.__version__}"
