"""What `losses.<name>` in params.yaml may set: every loss's options as a typed dataclass, without torch.

The schemas live apart from the implementations (as open_clip keeps model configs apart from model code) so
that reading and validating params — which every stage does — never imports torch. Each loss class names its
schema as `Options`; `register_loss` checks that the two agree. Options have no defaults: params.yaml lists
every option of every configured loss (`lossbench.config.schema` validates them, the same way as the other sections).

Each schema also declares its search space, `space`: the tunable options with their range (:class:`Range`, log scale
for scales, temperatures and learning rates) or choices (:class:`Choice`), so a new loss brings its space with it.
The ranges start from *A Metric Learning Reality Check* (Musgrave et al. 2020). Every loss that trains is also
tuned on the head's learning rate (:data:`TRAIN_SPACE`). :func:`search_space` applies params.yaml's
`losses.<loss>.tune.pin` and `losses.<loss>.tune.space` to it.
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


@dataclasses.dataclass(frozen=True)
class Range:
    """A tunable number in [low, high], sampled uniformly or, with ``log``, log-uniformly."""

    low: float
    high: float
    log: bool = False

    def with_bounds(self, bounds: Any) -> Range:
        """This range with its ends replaced by ``bounds`` = [low, high] (its scale kept)."""
        low, high = bounds
        return Range(float(low), float(high), self.log)

    def ends(self) -> tuple[Any, ...]:
        return (self.low, self.high)

    def contains(self, value: Any) -> bool:
        return self.low <= value <= self.high


@dataclasses.dataclass(frozen=True)
class Choice:
    """A tunable option taking one of ``choices``."""

    choices: tuple[Any, ...]

    def with_bounds(self, bounds: Any) -> Choice:
        return Choice(tuple(bounds))

    def ends(self) -> tuple[Any, ...]:
        return self.choices

    def contains(self, value: Any) -> bool:
        return value in self.choices


Dimension = Range | Choice
LOG_LR_MULT = Range(0.1, 100.0, log=True)  # learning-rate multiplier of loss-owned weights (class proxies)
LOG_SCALE = Range(1.0, 200.0, log=True)  # logit scale of the normalised-softmax losses
LOG_TEMPERATURE = Range(1e-3, 1.0, log=True)
TRAIN_SPACE: dict[str, Dimension] = {"train.lr": Range(1e-4, 1e-1, log=True)}
"""Tuned for every loss that trains: the head's learning rate (``train.lr``; loss weights learn at it × their
``weights_lr_mult``)."""


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
    space: ClassVar[dict[str, Dimension]] = {}

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

    space: ClassVar[dict[str, Dimension]] = {
        "margin": Range(0.0, math.nextafter(math.pi / 2, 0.0)),  # the schema requires < π/2
        "scale": LOG_SCALE,
        "weights_lr_mult": LOG_LR_MULT,
    }


@options_for("cosface")
class CosFaceOptions(LossOptions):
    scale: float = field(gt=0)
    margin: float = field(ge=0)
    weights_lr_mult: float = field(gt=0)

    space: ClassVar[dict[str, Dimension]] = {
        "margin": Range(0.0, 1.0),
        "scale": LOG_SCALE,
        "weights_lr_mult": LOG_LR_MULT,
    }


@options_for("triplet")
class TripletOptions(LossOptions):
    margin: float = field(ge=0)
    mining: Mining

    # batch_hard and none are valid too; add them with losses.triplet.tune.space ({mining: [...]}) to search them
    space: ClassVar[dict[str, Dimension]] = {"margin": Range(0.0, 2.0), "mining": Choice(("semihard", "hard", "all"))}


@options_for("contrastive")
class ContrastiveOptions(LossOptions):
    pos_margin: float = field(ge=0)
    neg_margin: float = field(ge=0)

    space: ClassVar[dict[str, Dimension]] = {"pos_margin": Range(0.0, 2.0), "neg_margin": Range(0.0, 2.0)}


@options_for("clip")
class ClipOptions(LossOptions):
    temperature: float = field(gt=0)
    learnable_temperature: bool
    max_logit_scale: float = field(gt=1)
    pairs: Pairs  # image: two images of an identity; text: an image and its identity's prompt (open_clip only)
    prompt: str  # pairs: text: the identity's name replaces "{}"

    # the initial temperature (learnt further when learnable_temperature). Below 1 / max_logit_scale (1e-2 at the
    # default 100) the logit scale is capped, so the range starts there; widen both to search lower temperatures
    space: ClassVar[dict[str, Dimension]] = {"temperature": Range(1e-2, 1.0, log=True)}

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

    space: ClassVar[dict[str, Dimension]] = {"temperature": LOG_TEMPERATURE}


@options_for("center_ce")
class CenterCrossEntropyOptions(LossOptions):
    center_weight: float = field(ge=0)
    center_lr: float = field(gt=0)
    scale: float = field(gt=0)
    label_smoothing: float = field(ge=0, lt=1)
    weights_lr_mult: float = field(gt=0)

    space: ClassVar[dict[str, Dimension]] = {
        "center_weight": Range(1e-4, 1.0, log=True),
        "center_lr": Range(1e-3, 1.0, log=True),
        "scale": Range(1.0, 64.0, log=True),
        "label_smoothing": Range(0.0, 0.3),
        "weights_lr_mult": LOG_LR_MULT,
    }


@options_for("arcface_center")
class ArcFaceCenterOptions(ArcFaceOptions):
    """ArcFace's options (`scale`, `margin`, `weights_lr_mult`) plus the center loss and plain CE terms."""

    center_weight: float = field(ge=0)
    center_lr: float = field(gt=0)
    ce_weight: float = field(ge=0)
    ce_scale: float = field(gt=0)

    space: ClassVar[dict[str, Dimension]] = {
        **ArcFaceOptions.space,
        "center_weight": Range(1e-4, 1.0, log=True),
        "center_lr": Range(1e-3, 1.0, log=True),
        "ce_weight": Range(1e-2, 10.0, log=True),
        "ce_scale": Range(1.0, 64.0, log=True),
    }


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


# --------------------------------------------------------------------------------------------- search spaces


def full_space(name: str) -> dict[str, Dimension]:
    """Every tunable setting of loss ``name`` (``train.lr``, then its options); empty for a loss that never trains."""
    cls = options_class(name)
    return {**TRAIN_SPACE, **cls.space} if cls.trains else {}


def _value_rules(name: str, key: str) -> tuple[Any, dict[str, Any]]:
    """(annotation, bounds) a value of setting ``key`` of loss ``name`` must satisfy (its schema field's)."""
    if key.startswith("train."):
        from lossbench.config.params import TrainConfig

        return schema.field_types(TrainConfig)[key.removeprefix("train.")]
    return schema.field_types(options_class(name))[key]


def search_space(
    name: str, loss_type: str, pin: Any = (), overrides: Mapping[str, Any] | None = None
) -> dict[str, Dimension]:
    """The space tuned for loss entry ``name`` (of type ``loss_type``): :func:`full_space` without the ``pin``ned
    settings, with ``overrides`` (setting → [low, high] for a range, the list of choices for a choice) replacing
    ranges. Every end and choice is checked against the setting's schema; errors name ``losses.<name>.tune.pin`` /
    ``losses.<name>.tune.space``."""
    space = full_space(loss_type)
    where = f"losses.{name}.tune.pin"
    if not isinstance(pin, (list, tuple)) or not all(isinstance(key, str) for key in pin):
        raise LossbenchError(f"params: '{where}' = {pin!r} must be a list of the loss's tunable settings.")
    overrides = {} if overrides is None else overrides
    if not isinstance(overrides, Mapping):
        raise LossbenchError(f"params: 'losses.{name}.tune.space' = {overrides!r} must be a mapping setting → range.")
    for key in [*pin, *overrides]:
        if key not in space:
            raise LossbenchError(
                f"params: 'losses.{name}.tune' names {key!r}, which is not tunable; tunable: "
                f"{', '.join(space) or 'none (the loss does not train)'}."
            )
    for key, bounds in overrides.items():
        where = f"losses.{name}.tune.space.{key}"
        if key in pin:
            raise LossbenchError(f"params: '{where}': {key!r} is also pinned (losses.{name}.tune.pin); keep one.")
        dim = space[key]
        shape = "[low, high]" if isinstance(dim, Range) else "a non-empty list of choices"
        if not isinstance(bounds, (list, tuple)) or not bounds or (isinstance(dim, Range) and len(bounds) != 2):
            raise LossbenchError(f"params: '{where}' = {bounds!r} must be {shape}.")
        tp, rules = _value_rules(loss_type, key)
        ends = [schema.coerce(v, tp, f"{where}[{i}]", rules) for i, v in enumerate(bounds)]
        space[key] = dim.with_bounds(ends)
        if isinstance(dim, Range) and not (ends[0] < ends[1] and (ends[0] > 0 or not dim.log)):
            raise LossbenchError(
                f"params: '{where}' = {bounds!r} must have low < high"
                + (" and low > 0 (log scale)." if dim.log else ".")
            )
    return {key: dim for key, dim in space.items() if key not in pin}
