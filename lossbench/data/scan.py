"""Find the images of a raw data folder (image-folder or challenge layout) and decode them to RGB."""

from __future__ import annotations

import hashlib
import os
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lossbench.core.errors import LossbenchError
from lossbench.data.layout import CHALLENGE, CHALLENGE_ROLES, IMAGE_FOLDER, LAYOUT_HELP, detect_layout
from lossbench.data.walk import Skip, Tree, cause, classify, display, join, list_folder, record, special_kind, walk

SKIP_REASONS = (
    "hidden",
    "not_an_image",
    "corrupt",
    "too_large",
    "unreadable",
    "special_file",
    "broken_symlink",
    "name_not_utf8",
)
"""Why a file is not used; each skipped file is listed under its reason (and its cause) in the data report."""


@dataclass(frozen=True)
class Candidate:
    """One file that may hold an image. ``split``/``role`` are fixed only for challenge test files."""

    path: str  # relative to the data root, posix
    identity: str  # "" for the unlabelled challenge test files
    domain: str  # first sub-folder below the identity folder, "" if none
    split: str = ""  # "challenge" or "" (assigned later)
    role: str = ""  # "query"/"gallery" for challenge test files, "" otherwise


@dataclass
class Scan:
    """What a data folder holds, before any file is decoded."""

    root: Path
    layout: str
    identities: list[str]  # every identity folder, sorted, including empty and unreadable ones
    candidates: list[Candidate]  # regular files, sorted by path
    skipped: list[Skip] = field(default_factory=list)  # files never decoded (hidden, special, broken links, ...)
    folders: list[Skip] = field(default_factory=list)  # folders not entered (hidden, unreadable, name not UTF-8)
    links: list[Skip] = field(default_factory=list)  # links to folders (DVC does not track what they hold)
    ignored: list[dict] = field(default_factory=list)  # {"path", "reason"}: entries outside the layout


class UnusableImage(Exception):
    """A file that cannot become a training image; ``reason`` is one of SKIP_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _top_level(folder: Path, rel: str, tree: Tree, outside: str) -> list[tuple[str, Path]]:
    """The sub-folders of ``folder`` as (relative path, path); its other entries are filed in ``tree`` (files as
    ``ignored`` with reason ``outside``)."""
    entries, error = list_folder(folder)
    if error is not None:
        raise LossbenchError(f"cannot list data folder {folder}: {cause(error)}")
    found = []
    for entry in entries:
        path = join(rel, display(entry.name))
        kind, skip = classify(entry)
        if kind == "folder":
            found.append((path, Path(entry.path)))
        elif kind == "file":
            tree.ignored.append({"path": path, "reason": outside})
        else:
            record(entry, path, kind, skip, tree)
    return found


def _scan_identities(folder: Path, rel: str, tree: Tree) -> tuple[list[str], list[Candidate]]:
    identities: list[str] = []
    candidates: list[Candidate] = []
    for path, entry in _top_level(folder, rel, tree, "not_in_an_identity_folder"):
        identities.append(entry.name)
        before = len(tree.files)
        walk(entry, path, tree)
        for file in tree.files[before:]:
            parts = file[len(path) + 1 :].split("/")
            candidates.append(Candidate(file, entry.name, parts[0] if len(parts) > 1 else ""))
    if not identities:
        raise LossbenchError(f"no identity folders found in {folder}. {LAYOUT_HELP}")
    return identities, candidates


def _scan_challenge_test(root: Path, tree: Tree) -> list[Candidate]:
    candidates: list[Candidate] = []
    for path, entry in _top_level(root / "test", "test", tree, "not_query_or_gallery"):
        if entry.name not in CHALLENGE_ROLES:
            tree.ignored.append({"path": path, "reason": "not_query_or_gallery"})
            continue
        before = len(tree.files)
        walk(entry, path, tree)
        candidates += [Candidate(file, "", "", CHALLENGE, entry.name) for file in tree.files[before:]]
    return candidates


def scan_folder(root: str | os.PathLike) -> Scan:
    """List identities and candidate image files of ``root``; nothing is opened yet."""
    root = Path(root)
    layout = detect_layout(root)
    tree = Tree()
    if layout == IMAGE_FOLDER:
        identities, candidates = _scan_identities(root, "", tree)
    else:
        for path, _entry in _top_level(root, "", tree, "not_train_or_test"):
            if path not in ("train", "test"):
                tree.ignored.append({"path": path, "reason": "not_train_or_test"})
        identities, candidates = _scan_identities(root / "train", "train", tree)
        candidates += _scan_challenge_test(root, tree)
    candidates.sort(key=lambda c: c.path)
    return Scan(
        root,
        layout,
        identities,
        candidates,
        skipped=sorted(tree.skipped, key=lambda s: s.path),
        folders=sorted(tree.folders, key=lambda s: s.path),
        links=sorted(tree.links, key=lambda s: s.path),
        ignored=sorted(tree.ignored, key=lambda d: d["path"]),
    )


INTEGER_DEPTHS = (8, 12, 16, 31)
"""Bit depths an integer image is read at: the smallest that holds its largest value (so 12-bit data stored in
16 bits is read as 12-bit; 31 = the positive range of 32-bit integers)."""


def _integer_to_8bit(values: np.ndarray) -> np.ndarray:
    """Scale integers by the smallest depth of INTEGER_DEPTHS that holds their maximum; negatives become 0."""
    values = np.clip(values.astype(np.float64), 0, None)
    top = float(values.max(initial=0))
    depth = next(d for d in INTEGER_DEPTHS if top <= 2**d - 1)
    return values * (255.0 / (2**depth - 1))


def _float_to_8bit(values: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] are scaled by 255, in [0, 255] kept, larger ones scaled by their maximum; NaN is 0."""
    values = np.clip(np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0), 0, None)
    top = float(values.max(initial=0))
    return values * (255.0 if top <= 1.0 else 1.0 if top <= 255.0 else 255.0 / top)


_DEEP_MODES = {
    "I": _integer_to_8bit,
    "I;16": _integer_to_8bit,
    "I;16L": _integer_to_8bit,
    "I;16B": _integer_to_8bit,
    "I;16N": _integer_to_8bit,
    "F": _float_to_8bit,
}
"""Single-channel modes deeper than 8 bits, converted to 8-bit grey by their value range."""


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: deeper grey by value range (see _DEEP_MODES), transparency on white."""
    if img.mode in _DEEP_MODES:
        grey = np.rint(_DEEP_MODES[img.mode](np.asarray(img)))
        img = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8), "L")
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


@contextmanager
def pixel_limit(max_pixels: int) -> Iterator[None]:
    """Pillow's decompression-bomb limit set to ``max_pixels`` inside the block (restored after)."""
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def _open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a regular file for reading; anything else (a FIFO would block forever) is an UnusableImage."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise UnusableImage("special_file", special_kind(mode))
        return open(path, "rb")  # noqa: SIM115 (closed by the caller's with-block)
    except OSError as exc:
        raise UnusableImage("unreadable", cause(exc)) from None


def open_rgb(path: str | os.PathLike, max_pixels: int) -> Image.Image:
    """Decode the first frame of ``path``, apply its EXIF orientation and return it as RGB.

    Raises UnusableImage("not_an_image" | "corrupt" | "too_large" | "unreadable" | "special_file", detail);
    images of more than ``max_pixels`` pixels are refused.
    """
    with warnings.catch_warnings(), pixel_limit(max_pixels), _open_regular(path) as handle:
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(handle) as img:
                img.load()
                return to_rgb(ImageOps.exif_transpose(img))
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise UnusableImage("too_large", f"{exc} (data.max_image_pixels = {max_pixels})") from None
        except UnidentifiedImageError as exc:
            raise UnusableImage("not_an_image", str(exc)) from None
        except OSError as exc:
            if exc.errno is not None:  # an error of the file system, not of the image data
                raise UnusableImage("unreadable", cause(exc)) from None
            raise UnusableImage("corrupt", f"{type(exc).__name__}: {exc}") from None
        except Exception as exc:  # PIL raises many types (SyntaxError, ValueError, ...) on bad data
            raise UnusableImage("corrupt", f"{type(exc).__name__}: {exc}") from None


def content_sha1(pixels: np.ndarray) -> str:
    """sha1 of decoded pixels and their shape, so re-encoded copies of the same pixels collide."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    digest = hashlib.sha1("x".join(map(str, pixels.shape)).encode() + b":")
    digest.update(pixels.tobytes())
    return digest.hexdigest()
