"""What `losses.<name>` in params.yaml may set: every loss's options as a typed dataclass, without torch.

The schemas live apart from the implementations (as open_clip keeps model configs apart from model code) so
that reading and validating params — which every stage does — never imports torch. Each loss class names its
schema as `Options`; `register_loss` checks that the two agree. Options have no defaults: params.yaml lists
every option of every configured loss (`lossbench.config.schema` validates them, the same way as the other sections).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

from lossbench.config import schema
from lossbench.config.schema import field
from lossbench.core.errors import LossbenchError

LOSS_OPTIONS: dict[str, type[LossOptions]] = {}
"""Loss name → its options dataclass (every loss, in registration order)."""

Mining = Literal["all", "hard", "semihard", "batch_hard", "none"]
Pairs = Literal["image", "text"]


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
    scale: float = field(gt=0)
    margin: float = field(ge=0, lt=math.pi / 2)  # radians
    weights_lr_mult: float = field(gt=0)


@options_for("cosface")
class CosFaceOptions(LossOptions):
    scale: float = field(gt=0)
    margin: float = field(ge=0)
    weights_lr_mult: float = field(gt=0)


@options_for("triplet")
class TripletOptions(LossOptions):
    margin: float = field(ge=0)
    mining: Mining


@options_for("contrastive")
class ContrastiveOptions(LossOptions):
    pos_margin: float = field(ge=0)
    neg_margin: float = field(ge=0)


@options_for("clip")
class ClipOptions(LossOptions):
    temperature: float = field(gt=0)
    learnable_temperature: bool
    max_logit_scale: float = field(gt=1)
    pairs: Pairs  # image: two images of an identity; text: an image and its identity's prompt (open_clip only)
    prompt: str  # pairs: text: the identity's name replaces "{}"

    def __post_init__(self) -> None:
        if self.pairs == "text" and "{}" not in self.prompt:
            raise LossbenchError(
                f"prompt {self.prompt!r} has no '{{}}' for the identity's name, so every identity would "
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
    temperature: float = field(gt=0)


@options_for("center_ce")
class CenterCrossEntropyOptions(LossOptions):
    center_weight: float = field(ge=0)
    center_lr: float = field(gt=0)
    scale: float = field(gt=0)
    label_smoothing: float = field(ge=0, lt=1)
    weights_lr_mult: float = field(gt=0)


@options_for("arcface_center")
class ArcFaceCenterOptions(ArcFaceOptions):
    """ArcFace's options (`scale`, `margin`, `weights_lr_mult`) plus the center loss and plain CE terms."""

    center_weight: float = field(ge=0)
    center_lr: float = field(gt=0)
    ce_weight: float = field(ge=0)
    ce_scale: float = field(gt=0)


# ----------------------------------------------------------------------------------------------- validation


def options_class(name: str) -> type[LossOptions]:
    """The options dataclass of loss ``name``; an unknown name is an error listing the known ones."""
    if name not in LOSS_OPTIONS:
        raise LossbenchError(f"unknown loss {name!r}; known losses: {', '.join(sorted(LOSS_OPTIONS))}")
    return LOSS_OPTIONS[name]


def loss_options(name: str) -> dict[str, str]:
    """The options of loss ``name`` (all required), each with what its value must be."""
    return schema.describe_fields(options_class(name))


def loss_trains(name: str) -> bool:
    """Whether loss ``name`` has a training objective (False only for the untrained ``baseline``)."""
    return options_class(name).trains


def build_options(
    name: str, options: Mapping[str, Any], key: str | None = None, extra_keys: tuple[str, ...] = ()
) -> LossOptions:
    """The validated options dataclass of loss ``name`` from ``options`` (every option: there are no defaults).

    ``key`` is where the options come from in params.yaml (e.g. ``losses.arcface``): messages then read
    ``params: 'losses.arcface.scale' …``; without it (options given to ``create_loss``): ``loss 'arcface': …``.
    """
    cls = options_class(name)
    where = schema.PARAMS if key is not None else schema.Where(f"loss {name!r}", "pass {it} to create_loss")
    return schema.build(cls, options, key or "", where, extra_keys=extra_keys)
