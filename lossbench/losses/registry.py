"""Name → loss class registry, with option validation that names the loss, the option and the fix."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable, Literal

from lossbench.errors import LossbenchError
from lossbench.losses.base import LossContext, MetricLoss

LOSSES: dict[str, type[MetricLoss]] = {}


def register_loss(name: str) -> Callable[[type[MetricLoss]], type[MetricLoss]]:
    """Class decorator adding a `MetricLoss` subclass to `LOSSES` under `name`."""

    def decorate(cls: type[MetricLoss]) -> type[MetricLoss]:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} is registered twice ({LOSSES[name].__name__}, {cls.__name__})")
        cls.name = name
        LOSSES[name] = cls
        return cls

    return decorate


def _loss_class(type_name: str) -> type[MetricLoss]:
    if type_name not in LOSSES:
        raise LossbenchError(f"unknown loss {type_name!r}; known losses: {', '.join(sorted(LOSSES))}")
    return LOSSES[type_name]


def loss_options(type_name: str) -> dict[str, Any]:
    """Accepted options of loss `type_name` with their defaults (the default's type is the option's type)."""
    cls = _loss_class(type_name)
    return {field.name: field.default for field in dataclasses.fields(cls.Options)}


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(hint))
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _coerce(hint: Any, value: Any) -> Any:
    """`value` converted to `hint` (int → float allowed), or raise TypeError."""
    if typing.get_origin(hint) is Literal:
        if value in typing.get_args(hint):
            return value
        raise TypeError
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if isinstance(value, bool):
        raise TypeError
    if hint is float and isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, hint):
        return value
    raise TypeError


def _bounds_problem(field: dataclasses.Field, value: Any) -> str | None:
    bounds = field.metadata
    if "gt" in bounds and not value > bounds["gt"]:
        return f"> {bounds['gt']}"
    if "ge" in bounds and not value >= bounds["ge"]:
        return f">= {bounds['ge']}"
    if "lt" in bounds and not value < bounds["lt"]:
        return f"< {bounds['lt']}"
    return None


def build_options(type_name: str, options: dict[str, Any]) -> Any:
    """The validated `Options` dataclass of loss `type_name` from user-given `options`."""
    cls = _loss_class(type_name)
    fields = {field.name: field for field in dataclasses.fields(cls.Options)}
    hints = typing.get_type_hints(cls.Options)
    accepted = ", ".join(f"{name} ({_describe(hints[name])}, default {field.default!r})" for name, field in fields.items())
    values = {}
    for key, value in options.items():
        if key not in fields:
            raise LossbenchError(
                f"loss {type_name!r}: unknown option {key!r}; accepted options: {accepted or 'none'}"
            )
        try:
            values[key] = _coerce(hints[key], value)
        except TypeError:
            raise LossbenchError(
                f"loss {type_name!r}: option {key}={value!r} must be {_describe(hints[key])}"
            ) from None
        problem = _bounds_problem(fields[key], values[key])
        if problem:
            raise LossbenchError(f"loss {type_name!r}: option {key}={value!r} must be {problem}")
    return cls.Options(**values)


def create_loss(type_name: str, num_classes: int, embed_dim: int, context: LossContext | None = None,
                **options: Any) -> MetricLoss:
    """Instantiate loss `type_name` for `num_classes` training identities and `embed_dim`-dim embeddings.

    `context` (identity names, backbone) is needed only by losses that use it, e.g. `clip` with `pairs: text`.
    """
    cls = _loss_class(type_name)
    built = build_options(type_name, options)
    if embed_dim < 1:
        raise LossbenchError(f"loss {type_name!r}: embed_dim={embed_dim} must be >= 1")
    if cls.uses_classes and num_classes < 2:
        raise LossbenchError(
            f"loss {type_name!r} trains a classifier over identities but got num_classes={num_classes}; "
            "it needs at least 2 training identities"
        )
    return cls(num_classes, embed_dim, built, context)
