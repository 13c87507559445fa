"""Typed settings from plain mappings (parsed YAML): one validator for the params sections and the loss options.

A schema is a frozen dataclass whose fields carry their type and, through :func:`field`, their bounds. Fields have
no defaults: every value comes from params.yaml, so a missing key is an error that names it. :func:`build` turns a
mapping into the dataclass, checking, with the full dotted key in every message:

- unknown keys (with a "did you mean"), missing keys (all of them, each with its type);
- types, converting where the YAML is unambiguous (int → float, "1e-3" → 1e-3): ``bool``, ``int``, ``float``,
  ``str``, ``typing.Literal[...]`` (choices), ``X | None``, ``list[X]``, ``dict[str, Any]``, nested dataclasses;
- bounds ``gt``/``ge``/``lt``/``le`` (on a list: on every item), list length and uniqueness.

Checks that involve several fields belong in the dataclass's ``__post_init__``; a :class:`LossbenchError` raised
there is reported under the dataclass's key. No torch here: every stage validates params before importing it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from lossbench.core.errors import LossbenchError

_META = "lossbench.config.schema"


def field(
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    min_items: int | None = None,
    max_items: int | None = None,
    unique: bool = False,
) -> Any:
    """A required dataclass field with bounds (for a list: bounds on each item, plus its length and uniqueness)."""
    rules = {
        "gt": gt,
        "ge": ge,
        "lt": lt,
        "le": le,
        "min_items": min_items,
        "max_items": max_items,
        "unique": unique or None,
    }
    return dataclasses.field(metadata={_META: {k: v for k, v in rules.items() if v is not None}})


@dataclasses.dataclass(frozen=True)
class Where:
    """How messages name the place of a value: ``<prefix>: '<key>' …`` and how to fix a missing key."""

    prefix: str = "params"
    fix: str = "add {it} to params.yaml"


PARAMS = Where()


# ------------------------------------------------------------------------------------------ descriptions


def _num(value: float) -> str:
    return f"{value:.6g}"


def _bounds_text(rules: Mapping[str, Any]) -> str:
    parts = [
        f"{sign} {_num(rules[key])}"
        for key, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
        if key in rules
    ]
    return " and ".join(parts)


_NOUNS = {
    bool: ("true/false", "true/false values"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
    type(None): ("null", "nulls"),
    Any: ("any value", "values"),
}


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def describe(tp: Any, rules: Mapping[str, Any] | None = None, *, plural: bool = False) -> str:
    """What a value of annotation ``tp`` with ``rules`` (from :func:`field`) must be, in words."""
    rules = rules or {}
    origin = typing.get_origin(tp)
    if _is_union(tp):
        return " or ".join(describe(arg, rules, plural=plural) for arg in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp)
        text = "a list of " + describe(
            item, {k: v for k, v in rules.items() if k in ("gt", "ge", "lt", "le")}, plural=True
        )
        lo, hi = rules.get("min_items"), rules.get("max_items")
        if lo is not None and lo == hi:
            text += f", exactly {lo} of them"
        elif lo is not None or hi is not None:
            text += (
                ", "
                + " and ".join(
                    t for t in (lo is not None and f"at least {lo}", hi is not None and f"at most {hi}") if t
                )
                + " of them"
            )
        return text + (", no repeats" if rules.get("unique") else "")
    if origin is dict or tp is dict:
        return "mappings" if plural else "a mapping"
    if dataclasses.is_dataclass(tp):
        return ("mappings" if plural else "a mapping") + " of " + ", ".join(f.name for f in dataclasses.fields(tp))
    noun = _NOUNS.get(tp, (getattr(tp, "__name__", str(tp)),) * 2)[1 if plural else 0]
    bounds = _bounds_text(rules) if tp in (int, float) else ""
    return f"{noun} {bounds}".rstrip()


@functools.cache
def field_types(cls: type) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Field name → (annotation, rules) of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], dict(f.metadata.get(_META, {}))) for f in dataclasses.fields(cls)}


def describe_fields(cls: type) -> dict[str, str]:
    """Field name → what its value must be (for help texts and error messages)."""
    return {name: describe(tp, rules) for name, (tp, rules) in field_types(cls).items()}


# ------------------------------------------------------------------------------------------ building


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _error(where: Where, key: str, text: str) -> LossbenchError:
    return LossbenchError(f"{where.prefix}: '{key}' {text}" if key else f"{where.prefix}: {text}")


def _must_be(where: Where, key: str, value: Any, what: str, hint: str = "") -> LossbenchError:
    return _error(where, key, f"= {value!r} must be {what}.{hint}")


class _Mismatch(Exception):
    """``value`` does not have the annotated type (turned into a message naming the key by the caller)."""


def _check_bounds(value: Any, rules: Mapping[str, Any]) -> bool:
    return not (
        ("gt" in rules and not value > rules["gt"])
        or ("ge" in rules and not value >= rules["ge"])
        or ("lt" in rules and not value < rules["lt"])
        or ("le" in rules and not value <= rules["le"])
    )


def _choice_hint(value: Any, choices: Iterable[Any]) -> str:
    strings = [c for c in choices if isinstance(c, str)]
    close = difflib.get_close_matches(value, strings, n=1) if isinstance(value, str) else []
    return f" Did you mean {close[0]!r}?" if close else ""


def _scalar(value: Any, tp: Any) -> Any:
    """``value`` as scalar type ``tp`` or raise :class:`_Mismatch`."""
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if isinstance(value, bool):
        raise _Mismatch
    if tp is int and isinstance(value, int):
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string; accept it as the number it obviously is
            try:
                value = float(value)
            except ValueError:
                raise _Mismatch from None
        if isinstance(value, (int, float)) and not math.isnan(value):
            return float(value)
        raise _Mismatch
    if tp is str and isinstance(value, str):
        return value
    raise _Mismatch


def _fits(value: Any, tp: Any) -> bool:
    """Whether ``value`` has the shape of ``tp`` (a scalar of its type, a list, a mapping), bounds aside."""
    if typing.get_origin(tp) in (list, Literal) or typing.get_origin(tp) is dict or dataclasses.is_dataclass(tp):
        return True
    try:
        _scalar(value, tp)
    except _Mismatch:
        return False
    return True


def coerce(value: Any, tp: Any, key: str, rules: Mapping[str, Any] | None = None, where: Where = PARAMS) -> Any:
    """``value`` checked against annotation ``tp`` and ``rules`` and converted; errors name ``key``."""
    rules = rules or {}
    origin = typing.get_origin(tp)
    if _is_union(tp):
        args = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        if len(args) == 1 and _fits(value, args[0]):  # `X | None` and value is an X: the message about X (bounds…)
            return coerce(value, args[0], key, rules, where)
        for arg in args:
            try:
                return coerce(value, arg, key, rules, where)
            except LossbenchError:
                continue
        raise _must_be(where, key, value, describe(tp, rules))
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key, where)
    if origin is Literal:
        choices = typing.get_args(tp)
        if any(value == choice and type(value) is type(choice) for choice in choices):
            return value
        raise _must_be(where, key, value, describe(tp), _choice_hint(value, choices))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _must_be(where, key, value, describe(tp, rules))
        (item_type,) = typing.get_args(tp)
        item_rules = {k: v for k, v in rules.items() if k in ("gt", "ge", "lt", "le")}
        items = [coerce(v, item_type, f"{key}[{i}]", item_rules, where) for i, v in enumerate(value)]
        lo, hi = rules.get("min_items"), rules.get("max_items")
        if (lo is not None and len(items) < lo) or (hi is not None and len(items) > hi):
            raise _must_be(where, key, value, describe(tp, rules))
        if rules.get("unique") and len(set(map(repr, items))) < len(items):
            raise _must_be(where, key, value, describe(tp, rules))
        return items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise _must_be(where, key, value, "a mapping")
        return {str(k): v for k, v in value.items()}
    try:
        converted = _scalar(value, tp)
    except _Mismatch:
        raise _must_be(where, key, value, describe(tp, rules)) from None
    if converted is not None and tp in (int, float) and not _check_bounds(converted, rules):
        raise _must_be(where, key, value, _bounds_text(rules))
    return converted


def build(cls: type, data: Any, key: str = "", where: Where = PARAMS, *, extra_keys: Iterable[str] = ()) -> Any:
    """Dataclass ``cls`` from mapping ``data`` (whose place is ``key``), every field required and validated.

    ``extra_keys`` are other keys the caller accepts at this level (listed in "unknown key" messages only).
    """
    if not isinstance(data, Mapping):
        raise _must_be(where, key or ("params.yaml" if where == PARAMS else "options"), data, describe(cls))
    fields = field_types(cls)
    for name in data:
        if name not in fields:
            allowed = [*fields, *extra_keys]
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise LossbenchError(
                f"{where.prefix}: unknown key '{_join(key, str(name))}'.{hint} "
                f"Allowed keys: {', '.join(allowed) or 'none'}."
            )
    missing = [name for name in fields if name not in data]
    if missing:
        keys = ", ".join(f"'{_join(key, name)}'" for name in missing)
        types_ = "; ".join(f"{name}: {describe(*fields[name])}" for name in missing)
        verb, it = ("is", "it") if len(missing) == 1 else ("are", "them")
        raise LossbenchError(f"{where.prefix}: {keys} {verb} missing; {where.fix.format(it=it)} ({types_}).")
    values = {name: coerce(data[name], tp, _join(key, name), rules, where) for name, (tp, rules) in fields.items()}
    try:
        return cls(**values)
    except LossbenchError as exc:  # a cross-field check in __post_init__
        raise LossbenchError(f"{where.prefix}: '{key}': {exc}" if key else f"{where.prefix}: {exc}") from None
