"""Find the images of a raw data folder (image-folder or challenge layout) and decode them to RGB."""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lossbench.errors import LossbenchError

IMAGE_FOLDER = "image_folder"
CHALLENGE = "challenge"
CHALLENGE_ROLES = ("query", "gallery")
SKIP_REASONS = ("hidden", "not_an_image", "corrupt", "too_large")

LAYOUT_HELP = (
    "expected one of two layouts: "
    "(a) image folder: <root>/<identity>/<image>, optionally <root>/<identity>/<domain>/<image>; "
    "(b) challenge: <root>/train/<identity>/... (as in a) plus unlabelled <root>/test/query/* "
    "and <root>/test/gallery/*"
)

_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


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
    identities: list[str]  # every identity folder, sorted, including empty ones
    candidates: list[Candidate]  # sorted by path
    hidden: list[str] = field(default_factory=list)  # hidden files; hidden folders end with "/"
    ignored: list[dict] = field(default_factory=list)  # {"path", "reason"}: entries outside the layout


class UnusableImage(Exception):
    """A file that cannot become a training image; ``reason`` is one of SKIP_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def detect_layout(root: str | os.PathLike) -> str:
    """Return IMAGE_FOLDER or CHALLENGE; a missing root or a file instead of a folder is an error."""
    root = Path(root)
    if not root.exists():
        raise LossbenchError(f"data folder {root} does not exist; point data.original to a folder. {LAYOUT_HELP}")
    if not root.is_dir():
        raise LossbenchError(f"data folder {root} is a file, not a folder. {LAYOUT_HELP}")
    test = root / "test"
    if (root / "train").is_dir() and ((test / "query").is_dir() or (test / "gallery").is_dir()):
        return CHALLENGE
    return IMAGE_FOLDER


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _walk(folder: Path, root: Path, hidden: list[str]) -> list[Path]:
    """Files below ``folder`` (sorted); hidden files and folders go to ``hidden`` (relative to root)."""
    files: list[Path] = []
    for current, dirs, names in os.walk(folder):
        here = Path(current)
        for name in sorted(d for d in dirs if _is_hidden(d)):
            hidden.append((here / name).relative_to(root).as_posix() + "/")
        dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
        for name in names:
            if _is_hidden(name):
                hidden.append((here / name).relative_to(root).as_posix())
            else:
                files.append(here / name)
    return sorted(files)


def _scan_identities(
    folder: Path, root: Path, hidden: list[str], ignored: list[dict]
) -> tuple[list[str], list[Candidate]]:
    identities: list[str] = []
    candidates: list[Candidate] = []
    for entry in sorted(folder.iterdir()):
        rel = entry.relative_to(root).as_posix()
        if _is_hidden(entry.name):
            hidden.append(rel + ("/" if entry.is_dir() else ""))
        elif not entry.is_dir():
            ignored.append({"path": rel, "reason": "not_in_an_identity_folder"})
        else:
            identities.append(entry.name)
            for file in _walk(entry, root, hidden):
                parts = file.relative_to(entry).parts
                domain = parts[0] if len(parts) > 1 else ""
                candidates.append(Candidate(file.relative_to(root).as_posix(), entry.name, domain))
    if not identities:
        raise LossbenchError(f"no identity folders found in {folder}. {LAYOUT_HELP}")
    return identities, candidates


def _scan_challenge_test(root: Path, hidden: list[str], ignored: list[dict]) -> list[Candidate]:
    candidates: list[Candidate] = []
    for entry in sorted((root / "test").iterdir()):
        rel = entry.relative_to(root).as_posix()
        if _is_hidden(entry.name):
            hidden.append(rel + ("/" if entry.is_dir() else ""))
        elif entry.name in CHALLENGE_ROLES and entry.is_dir():
            for file in _walk(entry, root, hidden):
                candidates.append(Candidate(file.relative_to(root).as_posix(), "", "", CHALLENGE, entry.name))
        else:
            ignored.append({"path": rel, "reason": "not_query_or_gallery"})
    return candidates


def scan_folder(root: str | os.PathLike) -> Scan:
    """List identities and candidate image files of ``root``; nothing is decoded yet."""
    root = Path(root)
    layout = detect_layout(root)
    hidden: list[str] = []
    ignored: list[dict] = []
    if layout == IMAGE_FOLDER:
        identities, candidates = _scan_identities(root, root, hidden, ignored)
    else:
        for entry in sorted(root.iterdir()):
            if entry.name in ("train", "test"):
                continue
            rel = entry.relative_to(root).as_posix()
            if _is_hidden(entry.name):
                hidden.append(rel + ("/" if entry.is_dir() else ""))
            else:
                ignored.append({"path": rel, "reason": "not_train_or_test"})
        identities, candidates = _scan_identities(root / "train", root, hidden, ignored)
        candidates += _scan_challenge_test(root, hidden, ignored)
    candidates.sort(key=lambda c: c.path)
    return Scan(root, layout, identities, candidates, sorted(hidden), sorted(ignored, key=lambda d: d["path"]))


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: 16-bit grey is rescaled, transparency is composited on white."""
    if img.mode in _SIXTEEN_BIT_MODES:
        grey = np.rint(np.asarray(img, dtype=np.float64) / 257.0)
        img = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.rint(np.asarray(img)), 0, 255).astype(np.uint8), "L")
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode the first frame of ``path``, apply its EXIF orientation and return it as RGB.

    Raises UnusableImage("not_an_image" | "corrupt" | "too_large", detail); images above PIL's
    decompression-bomb limit (its warning included) are refused.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                img.load()
                return to_rgb(ImageOps.exif_transpose(img))
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise UnusableImage("too_large", str(exc)) from None
        except UnidentifiedImageError as exc:
            raise UnusableImage("not_an_image", str(exc)) from None
        except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError, ...) on bad data
            raise UnusableImage("corrupt", f"{type(exc).__name__}: {exc}") from None


def content_sha1(pixels: np.ndarray) -> str:
    """sha1 of decoded pixels and their shape, so re-encoded copies of the same pixels collide."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    digest = hashlib.sha1("x".join(map(str, pixels.shape)).encode() + b":")
    digest.update(pixels.tobytes())
    return digest.hexdigest()
