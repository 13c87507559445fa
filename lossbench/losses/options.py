"""What `losses.<name>` in params.yaml may set: every loss's options as a typed dataclass, without torch.

The schemas live apart from the implementations (as open_clip keeps model configs apart from model code) so
that reading and validating params — which every stage does — never imports torch. Each loss class names its
schema as `Options`; `register_loss` checks that the two agree.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Callable, ClassVar, Literal

from lossbench.errors import LossbenchError

LOSS_OPTIONS: dict[str, type["LossOptions"]] = {}
"""Loss name → its options dataclass (every loss, in registration order)."""

Mining = Literal["all", "hard", "semihard", "batch_hard", "none"]
Pairs = Literal["image", "text"]


def option(default: Any, *, gt: float | None = None, ge: float | None = None, lt: float | None = None) -> Any:
    """A loss option with a default and optional numeric bounds (checked by :func:`build_options`)."""
    bounds = {key: value for key, value in (("gt", gt), ("ge", ge), ("lt", lt)) if value is not None}
    return dataclasses.field(default=default, metadata=bounds)


def options_for(name: str) -> Callable[[type], type]:
    """Class decorator: make ``cls`` a frozen dataclass and the options schema of loss ``name``."""

    def decorate(cls: type) -> type:
        if name in LOSS_OPTIONS:
            raise ValueError(f"loss {name!r} has two option schemas ({LOSS_OPTIONS[name].__name__}, {cls.__name__})")
        LOSS_OPTIONS[name] = dataclasses.dataclass(frozen=True)(cls)
        return LOSS_OPTIONS[name]

    return decorate


class LossOptions:
    """Base of every schema: `trains` False marks a loss with no training objective (the `baseline` row)."""

    trains: ClassVar[bool] = True

    def check_setup(self, backbone: str) -> None:
        """Raise :class:`LossbenchError` if these options cannot work with ``backbone`` (checked when params load)."""


@options_for("baseline")
class BaselineOptions(LossOptions):
    """No options: raw backbone features, nothing trains."""

    trains: ClassVar[bool] = False


@options_for("arcface")
class ArcFaceOptions(LossOptions):
    scale: float = option(64.0, gt=0)
    margin: float = option(0.5, ge=0, lt=math.pi / 2)  # radians
    weights_lr_mult: float = option(10.0, gt=0)


@options_for("cosface")
class CosFaceOptions(LossOptions):
    scale: float = option(64.0, gt=0)
    margin: float = option(0.35, ge=0)
    weights_lr_mult: float = option(10.0, gt=0)


@options_for("triplet")
class TripletOptions(LossOptions):
    margin: float = option(0.2, ge=0)
    mining: Mining = "semihard"


@options_for("contrastive")
class ContrastiveOptions(LossOptions):
    pos_margin: float = option(0.0, ge=0)
    neg_margin: float = option(0.5, ge=0)


@options_for("clip")
class ClipOptions(LossOptions):
    temperature: float = option(0.07, gt=0)
    learnable_temperature: bool = True
    max_logit_scale: float = option(100.0, gt=1)
    pairs: Pairs = "image"
    prompt: str = "a photo of {}"

    def __post_init__(self) -> None:
        if self.pairs == "text" and "{}" not in self.prompt:
            raise LossbenchError(
                f"loss 'clip': prompt {self.prompt!r} has no '{{}}' for the identity's name, so every identity would "
                "get the same prompt; write it like 'a photo of {}'"
            )

    def check_setup(self, backbone: str) -> None:
        family = backbone.partition(":")[0]
        if self.pairs == "text" and family != "open_clip":
            raise LossbenchError(
                f"image–text pairs need the text tower of an open_clip model, but model.backbone is {backbone!r}; "
                "use an 'open_clip:<name>' backbone (e.g. open_clip:ViT-B-32) or pairs: image"
            )


@options_for("supcon")
class SupConOptions(LossOptions):
    temperature: float = option(0.1, gt=0)


@options_for("center_ce")
class CenterCrossEntropyOptions(LossOptions):
    center_weight: float = option(0.01, ge=0)
    center_lr: float = option(0.01, gt=0)
    scale: float = option(16.0, gt=0)
    label_smoothing: float = option(0.0, ge=0, lt=1)
    weights_lr_mult: float = option(10.0, gt=0)


@options_for("arcface_center")
class ArcFaceCenterOptions(ArcFaceOptions):
    """ArcFace's options (`scale`, `margin`, `weights_lr_mult`) plus the center loss and plain CE terms."""

    center_weight: float = option(0.01, ge=0)
    center_lr: float = option(0.01, gt=0)
    ce_weight: float = option(1.0, ge=0)
    ce_scale: float = option(16.0, gt=0)


# ----------------------------------------------------------------------------------------------- validation


def options_class(name: str) -> type[LossOptions]:
    """The options dataclass of loss ``name``; an unknown name is an error listing the known ones."""
    if name not in LOSS_OPTIONS:
        raise LossbenchError(f"unknown loss {name!r}; known losses: {', '.join(sorted(LOSS_OPTIONS))}")
    return LOSS_OPTIONS[name]


def loss_options(name: str) -> dict[str, Any]:
    """Accepted options of loss ``name`` with their defaults (the default's type is the option's type)."""
    return {field.name: field.default for field in dataclasses.fields(options_class(name))}


def loss_trains(name: str) -> bool:
    """Whether loss ``name`` has a training objective (False only for the untrained ``baseline``)."""
    return options_class(name).trains


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(hint))
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _coerce(hint: Any, value: Any) -> Any:
    """``value`` converted to ``hint`` (int → float allowed), or raise TypeError."""
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


def build_options(name: str, options: dict[str, Any]) -> LossOptions:
    """The validated options dataclass of loss ``name`` from user-given ``options``."""
    cls = options_class(name)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    accepted = ", ".join(f"{key} ({_describe(hints[key])}, default {field.default!r})" for key, field in fields.items())
    values = {}
    for key, value in options.items():
        if key not in fields:
            raise LossbenchError(f"loss {name!r}: unknown option {key!r}; accepted options: {accepted or 'none'}")
        try:
            values[key] = _coerce(hints[key], value)
        except TypeError:
            raise LossbenchError(f"loss {name!r}: option {key}={value!r} must be {_describe(hints[key])}") from None
        problem = _bounds_problem(fields[key], values[key])
        if problem:
            raise LossbenchError(f"loss {name!r}: option {key}={value!r} must be {problem}")
    return cls(**values)
