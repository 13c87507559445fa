"""The one rule for ``model.pretrained``: which source a backbone's weights come from, and which files it reads.

For a backbone spec (``<family>:<name>``, or ``hybrid:<specA>+<specB>[+...]``) and ``model.pretrained``:

- ``None`` / ``False`` / ``""``: ``none``, random initialisation;
- a path to an existing file: ``file``, those weights (a path-like value naming no file is an error);
- timm only, with no tag in the model name, a tag registered in :mod:`lossbench.models.pretrained`: ``packaged``,
  a weights file inside an installed package;
- any other string: ``hub``, a tag the family looks up in its local caches (timm / open_clip hub caches); which
  file that is only the family's library can say, so no file is named here.

A hybrid spec takes one value for all parts, or one per part joined by ``'+'`` (an empty one is ``none``).
No torch, timm or open_clip here: the ``weights`` stage and the feature-cache key resolve weights cheaply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lossbench.core.errors import LossbenchError
from lossbench.models.pretrained import is_packaged, packaged_weights_path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")

SourceKind = Literal["none", "file", "packaged", "hub"]


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights of one non-hybrid backbone come from: ``kind``, the tag or path asked for (``value``)
    and the file read (``path``, for ``file`` and ``packaged``)."""

    kind: SourceKind
    value: str | None = None
    path: Path | None = None


def normalise_pretrained(pretrained: object) -> str | None:
    """``model.pretrained`` as a string, ``None`` for random init; any other type is a :class:`LossbenchError`."""
    if pretrained is None or pretrained is False or pretrained == "":
        return None
    if isinstance(pretrained, (str, os.PathLike)):
        return os.fspath(pretrained)
    raise LossbenchError(
        f"model.pretrained: {pretrained!r} is not valid; use null (random init), a weights file path or a tag "
        "such as 'timm' / 'openai'"
    )


def existing_weights_file(pretrained: str) -> Path | None:
    """The weights file ``pretrained`` names, ``None`` if it is a tag; a missing path-like value is an error."""
    path = Path(pretrained).expanduser()
    if path.is_file():
        return path
    if os.sep in pretrained or "/" in pretrained or pretrained.lower().endswith(WEIGHT_SUFFIXES):
        raise LossbenchError(
            f"model.pretrained: weights file {pretrained!r} does not exist; fix the path or use null for random init"
        )
    return None


def split_hybrid_pretrained(pretrained: str | None, count: int, spec: str) -> list[str | None]:
    """One ``pretrained`` value per part of hybrid ``spec``: the same for all, or its ``'+'``-joined values."""
    if pretrained is None:
        return [None] * count
    if "+" not in pretrained or Path(pretrained).expanduser().is_file():
        return [pretrained] * count
    values = pretrained.split("+")
    if len(values) != count:
        raise LossbenchError(
            f"model.pretrained: {pretrained!r} names {len(values)} weights but backbone {spec!r} has {count} parts; "
            "give one value for all parts or one per part joined by '+'"
        )
    return [v or None for v in values]


def resolve_part(spec: str, pretrained: object) -> WeightsSource:
    """The source of the weights of non-hybrid backbone ``spec``.

    A packaged tag is resolved to its file, so a missing package raises its install hint here.
    """
    value = normalise_pretrained(pretrained)
    if value is None:
        return WeightsSource("none")
    path = existing_weights_file(value)
    if path is not None:
        return WeightsSource("file", value, path)
    family, _, name = str(spec).partition(":")
    arch, _, spec_tag = name.partition(".")  # timm's "<arch>.<tag>" split, without importing timm
    if family == "timm" and not spec_tag and is_packaged(arch, value):
        return WeightsSource("packaged", value, packaged_weights_path(arch, value))
    return WeightsSource("hub", value)


def resolve_weights(spec: str, pretrained: object) -> list[WeightsSource]:
    """The sources of backbone ``spec``'s weights: one per part of a hybrid spec, else one."""
    family, _, name = str(spec).partition(":")
    if family != "hybrid":
        return [resolve_part(spec, pretrained)]
    parts = name.split("+")
    values = split_hybrid_pretrained(normalise_pretrained(pretrained), len(parts), str(spec))
    return [source for part, value in zip(parts, values) for source in resolve_weights(part, value)]


def weights_files(spec: str, pretrained: object) -> list[Path]:
    """The weights files ``create_backbone(spec, pretrained)`` reads (user and packaged files, each once)."""
    return list(dict.fromkeys(s.path for s in resolve_weights(spec, pretrained) if s.path is not None))


def packaged_weights_files(spec: str, pretrained: object) -> list[Path]:
    """The packaged weights files ``create_backbone(spec, pretrained)`` reads (``[]`` if none)."""
    return list(dict.fromkeys(s.path for s in resolve_weights(spec, pretrained) if s.kind == "packaged" and s.path))
