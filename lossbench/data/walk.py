"""Walk a data folder without following directory links or opening anything: every entry is either a regular
file to decode, a sub-folder to enter, or a :class:`Skip` that names it and says why."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Skip:
    """An entry that is not used: ``path`` relative to the data root (folders end with "/"), a reason, its cause."""

    path: str
    reason: str
    detail: str = ""


@dataclass
class Tree:
    """What a walk found below a folder."""

    files: list[str] = field(default_factory=list)  # regular files (or links to one), relative paths, sorted
    skipped: list[Skip] = field(default_factory=list)  # files that are not decoded
    folders: list[Skip] = field(default_factory=list)  # folders that were not entered
    links: list[Skip] = field(default_factory=list)  # links to folders: DVC does not track what they hold
    ignored: list[dict] = field(default_factory=list)  # {"path", "reason"}: entries outside the layout


def display(name: str) -> str:
    """``name`` printable and UTF-8 encodable: bytes that are not UTF-8 appear as ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def cause(exc: OSError) -> str:
    """The OS error's reason without the path (the report names the path already)."""
    return f"{type(exc).__name__}: {exc.strerror or exc}"


_SPECIAL = (
    (stat.S_ISFIFO, "named pipe (FIFO)"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def special_kind(mode: int) -> str:
    """What a non-regular, non-folder file is ("named pipe (FIFO)", "socket", ...)."""
    return next((text for test, text in _SPECIAL if test(mode)), "special file")


def _broken_link(path: str, exc: OSError) -> Skip:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    if exc.errno == errno.ELOOP:
        return Skip("", "broken_symlink", f"symlink loop (-> {display(target)})")
    if exc.errno == errno.ENOENT:
        return Skip("", "broken_symlink", f"dangling symlink (-> {display(target)}: no such file)")
    return Skip("", "unreadable", cause(exc))


def classify(entry: os.DirEntry) -> tuple[str, Skip | None]:
    """("file" | "folder" | "link" | "skip", the Skip with an empty path for anything not used)."""
    if entry.name.startswith("."):
        return "skip", Skip("", "hidden")
    if not is_utf8(entry.name):
        return "skip", Skip("", "name_not_utf8", "the name is not valid UTF-8: rename it")
    try:
        mode = os.stat(entry.path).st_mode  # follows a file link to its target
    except OSError as exc:
        return "skip", _broken_link(entry.path, exc) if entry.is_symlink() else Skip("", "unreadable", cause(exc))
    if stat.S_ISDIR(mode):
        return ("link" if entry.is_symlink() else "folder"), None
    if stat.S_ISREG(mode):
        return "file", None
    return "skip", Skip("", "special_file", special_kind(mode))


def join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def list_folder(path: str | os.PathLike) -> tuple[list[os.DirEntry], OSError | None]:
    """The entries of one folder sorted by name, or the error that stopped the listing."""
    try:
        with os.scandir(path) as entries:
            return sorted(entries, key=lambda e: e.name), None
    except OSError as exc:
        return [], exc


def record(entry: os.DirEntry, path: str, kind: str, skip: Skip | None, tree: Tree) -> None:
    """File a link to a folder or a skipped entry (a folder one when it is a folder) in ``tree``."""
    if kind == "link":
        tree.links.append(Skip(path + "/", "directory_symlink", f"-> {display(os.readlink(entry.path))}"))
    elif entry.is_dir(follow_symlinks=False):
        tree.folders.append(Skip(path + "/", skip.reason, skip.detail))
    else:
        tree.skipped.append(Skip(path, skip.reason, skip.detail))


def walk(folder: str | os.PathLike, rel: str, tree: Tree | None = None) -> Tree:
    """Everything below ``folder`` (whose path relative to the data root is ``rel``), depth first, sorted."""
    tree = Tree() if tree is None else tree
    entries, error = list_folder(folder)
    if error is not None:
        tree.folders.append(Skip(rel + "/", "unreadable", cause(error)))
    for entry in entries:
        path = join(rel, display(entry.name))
        kind, skip = classify(entry)
        if kind == "file":
            tree.files.append(path)
        elif kind == "folder":
            walk(entry.path, path, tree)
        else:
            record(entry, path, kind, skip, tree)
    return tree
