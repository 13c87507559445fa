"""Which layout a data folder has; shapes that would be misread (a pre-split set, a challenge folder with a
missing or misspelled ``test/query`` / ``test/gallery``) are refused with what was recognised and what is expected."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from pathlib import Path

from lossbench.core.errors import LossbenchError

IMAGE_FOLDER = "image_folder"
CHALLENGE = "challenge"
CHALLENGE_ROLES = ("query", "gallery")
SPLIT_NAMES = ("train", "val", "valid", "validation", "test")
"""Top-level folder names that mean a split, never an identity."""

LAYOUT_HELP = (
    "expected one of two layouts: "
    "(a) image folder: <root>/<identity>/<image>, optionally <root>/<identity>/<domain>/<image>; "
    "(b) challenge: <root>/train/<identity>/... (as in a) plus unlabelled <root>/test/query/* "
    "and <root>/test/gallery/*"
)


def subfolders(folder: Path) -> list[str]:
    """Names of the visible sub-folders of ``folder`` (links to folders included), sorted; [] if unreadable."""
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
    except OSError:
        return []


def _listed(names: list[str]) -> str:
    return ", ".join(f"{n}/" for n in names) if names else "no folders"


def _looks_like_roles(names: list[str]) -> bool:
    """Whether folder names look like misspelled query/gallery folders (queries, galery, Query ...)."""
    aliases = ("query", "queries", "gallery", "galleries", "probe", "probes")
    return any(difflib.get_close_matches(n.lower(), aliases, n=1, cutoff=0.7) for n in names)


def _misspelled_challenge(root: Path, folders: list[str]) -> str | None:
    if "train" not in folders or "test" not in folders:
        return None
    found = subfolders(root / "test")
    if set(CHALLENGE_ROLES) <= set(found) or (found and not _looks_like_roles(found)):
        return None
    missing = [r for r in CHALLENGE_ROLES if r not in found]
    return (
        f"recognised a challenge layout (train/ and test/), but test/ holds {_listed(found)} and lacks "
        f"{' and '.join(f'test/{r}/' for r in missing)}: rename the folders to test/query/ and test/gallery/"
    )


def _pre_split(root: Path, folders: list[str]) -> str | None:
    splits = [f for f in folders if f.lower() in SPLIT_NAMES]
    if len(splits) < 2 or (set(CHALLENGE_ROLES) <= set(subfolders(root / "test")) and "train" in folders):
        return None
    return (
        f"recognised a pre-split data set ({_listed(splits)} each holding <person>/ folders); lossbench splits "
        "identities itself (data.val_ids, data.test_ids: seeded, disjoint), and would read the "
        f"{len(splits)} splits as identities and the people as their domains: merge the <person>/ folders of "
        f"{_listed(splits)} into one folder and point data.original to it"
    )


def _lone_split(root: Path, folders: list[str]) -> str | None:
    splits = [f for f in folders if f.lower() in SPLIT_NAMES]
    if len(splits) != 1:
        return None
    if splits[0] == "train":
        return (
            "recognised train/ of a challenge layout but no test/ folder (test/query/ and test/gallery/); "
            "add it, or point data.original to train/ itself to use it as an image folder"
        )
    return (
        f"the folder {splits[0]}/ names a split, not an identity: point data.original to it if it holds the "
        "<identity>/ folders, or rename it"
    )


MISREADS: tuple[Callable[[Path, list[str]], str | None], ...] = (_misspelled_challenge, _pre_split, _lone_split)
"""Each returns what a folder was recognised as and what is expected, or None when the shape is not its case."""


def misread(root: Path) -> str | None:
    """Why ``root`` would be misread, or None."""
    folders = subfolders(root)
    return next((text for check in MISREADS if (text := check(root, folders))), None)


def detect_layout(root: str | os.PathLike) -> str:
    """Return IMAGE_FOLDER or CHALLENGE; a missing root, a file or a misread shape is an error."""
    root = Path(root)
    if not root.exists():
        raise LossbenchError(f"data folder {root} does not exist; point data.original to a folder. {LAYOUT_HELP}")
    if not root.is_dir():
        raise LossbenchError(f"data folder {root} is a file, not a folder. {LAYOUT_HELP}")
    problem = misread(root)
    if problem:
        raise LossbenchError(f"data folder {root}: {problem}. {LAYOUT_HELP}")
    folders = subfolders(root)
    return CHALLENGE if "train" in folders and "test" in folders else IMAGE_FOLDER
