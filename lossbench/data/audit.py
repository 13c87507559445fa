"""``python -m lossbench check-data PATH``: every problem of a data folder that would stop ``dvc add`` /
``dvc repro`` (dangling links, link loops, unreadable entries) or lose or mislead data (special files, links to
folders, names that are not UTF-8, a misread layout), found without decoding any image."""

from __future__ import annotations

import os
from pathlib import Path

from lossbench.core.errors import LossbenchError
from lossbench.data.layout import detect_layout
from lossbench.data.walk import Skip, cause, walk

PROBLEMS = ("layout", "broken_symlink", "directory_symlink", "unreadable", "special_file", "name_not_utf8")
"""Kinds of problem check-data reports (hidden files, non-images and corrupt images are preprocess's to skip)."""


def _unreadable(root: Path, files: list[str]) -> list[Skip]:
    """Regular files that cannot be opened and read (a permission error makes DVC's hashing fail)."""
    found = []
    for rel in files:
        try:
            with open(root / rel, "rb") as handle:
                handle.read(1)
        except OSError as exc:
            found.append(Skip(rel, "unreadable", cause(exc)))
    return found


def audit_folder(root: str | os.PathLike) -> list[Skip]:
    """Every problem below ``root``, sorted by kind then path; [] when the folder is ready for DVC and preprocess."""
    root = Path(root)
    problems = []
    try:
        detect_layout(root)
    except LossbenchError as exc:
        problems.append(Skip(str(root), "layout", str(exc)))
    if not root.is_dir():
        return problems
    tree = walk(root, "")
    problems += [s for s in [*tree.skipped, *tree.folders, *tree.links] if s.reason in PROBLEMS]
    problems += _unreadable(root, tree.files)
    return sorted(problems, key=lambda p: (PROBLEMS.index(p.reason), p.path))


def format_problems(root: str | os.PathLike, problems: list[Skip]) -> str:
    """One line per problem and a summary line."""
    if not problems:
        return f"{root}: no problems found (ready for `dvc add` and preprocess)"
    lines = [f"{p.path or '.'}: {p.reason}" + (f" ({p.detail})" if p.detail else "") for p in problems]
    counts = ", ".join(
        f"{sum(p.reason == k for p in problems)} {k}" for k in PROBLEMS if any(p.reason == k for p in problems)
    )
    return "\n".join([*lines, f"{root}: {len(problems)} problem(s): {counts}; fix them before `dvc add` / `dvc repro`"])
