"""Presets: the source projects' setups as data (``presets/<name>.yaml``), applied to params.yaml.

A preset file holds a one-line ``description`` and ``params``, an overlay of params.yaml: every key it lists
is set; its ``losses`` mapping is the exact set of losses (configured losses it does not list are removed,
listed entries are overlaid on the existing ones); every other setting stays as it is. params have no
defaults, so a preset lists every option of each loss it configures (it then works whichever losses
params.yaml configures); per-loss ``model``/``train`` overrides list only what they change.

A preset becomes Hydra overrides, i.e. ``dvc exp run -S …`` arguments, computed against the current
params.yaml. ``--apply`` runs those same overrides through DVC's own ``-S`` implementation on a copy of
params.yaml (so comments are kept and both ways give the same file), validates the result with
:func:`lossbench.config.params.parse_params` and only then replaces params.yaml.
"""

from __future__ import annotations

import difflib
import re
import shlex
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lossbench.config.params import Params, parse_params
from lossbench.core.errors import LossbenchError
from lossbench.core.io import atomic_write_text

PRESETS_DIR = Path(__file__).resolve().parents[2] / "presets"
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_KEYWORDS = {"true", "false", "null", "nan", "inf"}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    params: dict[str, Any]


def _read(path: Path) -> Preset:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LossbenchError(f"preset file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("params"), Mapping) or not data.get("description"):
        raise LossbenchError(f"preset file {path} needs a 'description' line and a 'params' mapping")
    if not isinstance(data["params"].get("losses"), Mapping) or not data["params"]["losses"]:
        raise LossbenchError(f"preset file {path}: 'params.losses' must list the losses of the preset")
    return Preset(path.stem, str(data["description"]), dict(data["params"]))


def list_presets(directory: str | Path = PRESETS_DIR) -> dict[str, Preset]:
    """Every preset in ``directory``, by name (the file name without ``.yaml``)."""
    return {path.stem: _read(path) for path in sorted(Path(directory).glob("*.yaml"))}


def load_preset(name: str, directory: str | Path = PRESETS_DIR) -> Preset:
    presets = list_presets(directory)
    if name not in presets:
        close = difflib.get_close_matches(name, list(presets), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise LossbenchError(
            f"unknown preset {name!r}.{hint} Presets: {', '.join(presets) or 'none'} "
            f"(`python -m lossbench preset --list`)"
        )
    return presets[name]


def _leaves(tree: Mapping, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every leaf; an empty mapping is a leaf (``{}``)."""
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, dotted + ".")
        else:
            yield dotted, value


def _exists(tree: Mapping, dotted: str) -> bool:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def hydra_value(value: Any) -> str:
    """``value`` in Hydra's override grammar (what ``dvc exp run -S key=<value>`` parses back to ``value``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping) and not value:
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _KEYWORDS:
            return value
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise LossbenchError(f"preset value {value!r} of type {type(value).__name__} cannot be written as a -S override")


def overrides(preset: Preset, current: Mapping) -> list[str]:
    """Hydra overrides turning the ``current`` params into the preset: removals, then one per set key.

    Keys absent from ``current`` get Hydra's ``++`` (add or override) prefix.
    """
    configured = current.get("losses") or {}
    removals = [f"~losses.{name}" for name in configured if name not in preset.params["losses"]]
    sets = [
        f"{'' if _exists(current, key) else '++'}{key}={hydra_value(value)}" for key, value in _leaves(preset.params)
    ]
    return removals + sets


def command(args: list[str]) -> str:
    """The ``dvc exp run`` command line setting ``args``, one ``-S`` per line, ready to paste into a shell."""
    return " \\\n".join(["dvc exp run", *(f"  -S {shlex.quote(arg)}" for arg in args)])


def _apply_with_dvc(text: str, args: list[str]) -> str:
    """params.yaml text after DVC's ``-S`` implementation applied ``args`` (comments kept)."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import apply_overrides

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "params.yaml"
        copy.write_text(text, encoding="utf-8")
        try:
            apply_overrides(copy, args)
        except InvalidArgumentError as exc:
            raise LossbenchError(f"dvc cannot apply the overrides {args}: {exc.__cause__ or exc}") from None
        return copy.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Resolved:
    """A preset resolved against a params file: the overrides, the resulting file text and its params."""

    preset: Preset
    overrides: list[str]
    text: str
    params: Params


def resolve(name: str, params_path: str | Path = "params.yaml", directory: str | Path = PRESETS_DIR) -> Resolved:
    """Apply preset ``name`` to a copy of ``params_path`` and validate the result (nothing is written)."""
    preset = load_preset(name, directory)
    params_path = Path(params_path)
    if not params_path.is_file():
        raise LossbenchError(f"{params_path} not found; run from the project root (where params.yaml is)")
    text = params_path.read_text(encoding="utf-8")
    try:
        current = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise LossbenchError(f"{params_path} is not valid YAML: {exc}") from None
    args = overrides(preset, current)
    new_text = _apply_with_dvc(text, args)
    try:
        params = parse_params(yaml.safe_load(new_text))
    except LossbenchError as exc:
        raise LossbenchError(f"preset {name!r} does not give valid params: {exc}") from None
    return Resolved(preset, args, new_text, params)


def apply_preset(name: str, params_path: str | Path = "params.yaml", directory: str | Path = PRESETS_DIR) -> Resolved:
    """Rewrite ``params_path`` (atomically) with preset ``name`` applied; return what was applied."""
    resolved = resolve(name, params_path, directory)
    atomic_write_text(params_path, resolved.text)
    return resolved
