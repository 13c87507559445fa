"""Typed parameters: ``params.yaml`` → dataclasses, with errors that name the key, the value and the fix.

params.yaml is the only source of values: the dataclasses below carry types and allowed ranges but no defaults, so a
key missing from params.yaml is an error naming it (never a silent fallback that ``dvc params diff`` cannot see).
:func:`lossbench.config.schema.build` does the checking for every section and for the loss options; checks that involve
several fields live in ``__post_init__`` (or, across sections, in :func:`parse_params`) and all run once, at load.
Per-loss entries under ``losses`` may override ``model.*`` and ``train.*`` for that loss only
(e.g. "ArcFace unfrozen, batch 128; Triplet frozen, batch 64"); :meth:`Params.resolve_loss` merges them.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from lossbench.config.schema import build, field
from lossbench.core.errors import LossbenchError

BACKBONE_FAMILIES = ("timm", "open_clip", "hybrid")
Monitor = Literal["val_top1", "val_top5", "val_mAP"]
MONITORS: tuple[str, ...] = typing.get_args(Monitor)
LOSS_ENTRY_KEYS = ("type", "model", "train", "tune")
"""Keys of a ``losses.<name>`` entry besides the loss's options."""


@dataclass(frozen=True)
class DataConfig:
    original: str
    image_size: int = field(ge=16, le=1024)
    val_ids: float = field(ge=0.0, le=0.9)
    test_ids: float = field(ge=0.0, le=0.9)
    folds: int = field(ge=0)
    fold: int = field(ge=0)
    queries_per_id: int = field(ge=1)
    query_domain: str | None
    query_domain_missing: Literal["random", "train"]
    min_images_per_id: int = field(ge=2)
    max_image_pixels: int = field(ge=1)

    @property
    def test_share(self) -> float:
        """Share of identities in test: ``1 / folds`` with identity folds (``test_ids`` is then unused), else
        ``test_ids``."""
        return 1.0 / self.folds if self.folds else self.test_ids

    def __post_init__(self) -> None:
        if self.folds == 1:
            raise LossbenchError(
                "folds = 1 would put every identity in test; use folds: 0 (one split, test share "
                "test_ids) or folds >= 2 (identity cross-validation, test share 1/folds)."
            )
        if self.folds and self.fold >= self.folds:
            raise LossbenchError(
                f"fold = {self.fold} is not one of the {self.folds} folds; use 0 <= fold <= {self.folds - 1}."
            )
        if not self.folds and self.fold:
            raise LossbenchError(
                f"fold = {self.fold} needs folds > {self.fold} (folds: 0 means no folds, and then "
                f"fold must be 0); e.g. `dvc exp run -S data.folds=5 -S data.fold={self.fold}`."
            )
        if self.val_ids + self.test_share >= 1.0:
            test, fix = (
                ("1/folds", "lower val_ids or raise folds") if self.folds else ("test_ids", "keep their sum below 1")
            )
            raise LossbenchError(
                f"val_ids + {test} = {self.val_ids + self.test_share:g} leaves no identities for training; {fix}."
            )


@dataclass(frozen=True)
class SyntheticConfig:
    identities: int = field(ge=2)
    images_per_id: int = field(ge=2)
    image_size: int = field(ge=16, le=1024)
    domains: list[str]


@dataclass(frozen=True)
class ModelConfig:
    backbone: str
    pretrained: str | None
    freeze: bool
    input_size: int | None = field(ge=16, le=1024)
    embed_dim: int = field(ge=2, le=65536)
    hidden: int = field(ge=0, le=65536)
    dropout: float = field(ge=0.0, le=0.95)

    def __post_init__(self) -> None:
        family, sep, name = self.backbone.partition(":")
        if not sep or not name:
            raise LossbenchError(
                f"backbone {self.backbone!r} must look like '<family>:<name>' with family one of "
                f"{', '.join(BACKBONE_FAMILIES)} (e.g. 'timm:resnet18', 'open_clip:ViT-B-32', "
                f"'hybrid:timm:resnet101+timm:swin_tiny_patch4_window7_224')."
            )
        if family not in BACKBONE_FAMILIES:
            raise LossbenchError(
                f"unknown backbone family {family!r} in {self.backbone!r}; use one of {', '.join(BACKBONE_FAMILIES)}."
            )


@dataclass(frozen=True)
class AugmentConfig:
    crop_scale: list[float] = field(gt=0.0, le=1.0, min_items=2, max_items=2)
    hflip: bool
    color_jitter: float = field(ge=0.0, le=1.0)

    def __post_init__(self) -> None:
        low, high = self.crop_scale
        if low > high:
            raise LossbenchError(f"crop_scale = {list(self.crop_scale)} must be [min, max] with min <= max.")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = field(ge=1)
    ids_per_batch: int = field(ge=2)
    images_per_id: int = field(ge=2)
    lr: float = field(gt=0.0, le=10.0)
    backbone_lr_mult: float = field(ge=0.0)
    weight_decay: float = field(ge=0.0, le=1.0)
    warmup_epochs: int = field(ge=0)
    grad_clip: float = field(ge=0.0)
    patience: int = field(ge=1)
    monitor: Monitor
    feature_views: int = field(ge=1, le=64)
    eval_batch_size: int = field(ge=1)
    augment: AugmentConfig


@dataclass(frozen=True)
class IndexConfig:
    factory: str
    train_size: int | None = field(ge=1)
    nprobe: int | None = field(ge=1)
    ef_search: int | None = field(ge=1)


@dataclass(frozen=True)
class EvaluateConfig:
    protocol: Literal["query_gallery", "all_vs_all"]
    topk: list[int] = field(ge=1, min_items=1)
    far: list[float] = field(gt=0.0, lt=1.0)
    flip_tta: bool
    batch_size: int = field(ge=1)
    tsne: bool
    examples: int = field(ge=0, le=64)


@dataclass(frozen=True)
class StatsConfig:
    resamples: int = field(ge=100)
    confidence: float = field(gt=0.0, lt=1.0)
    min_events: int = field(ge=1)


@dataclass(frozen=True)
class PrunerConfig:
    startup_trials: int = field(ge=0)
    warmup_epochs: int = field(ge=0)


@dataclass(frozen=True)
class TuneConfig:
    """The ``tune`` section (lossbench/tuning: what each key does)."""

    trials: int = field(ge=0)
    seeds: list[int] = field(ge=0, min_items=1, unique=True)
    epochs: int | None = field(ge=1)
    sampler_seed: int = field(ge=0)
    startup_trials: int = field(ge=1)
    pruner: PrunerConfig
    storage: str | None


@dataclass(frozen=True)
class LossSpec:
    """One entry of ``losses``, resolved: its type, options and effective model/train settings."""

    name: str
    type: str
    options: dict[str, Any]
    model: ModelConfig
    train: TrainConfig
    pin: tuple[str, ...] = ()  # losses.<name>.tune.pin: settings kept at their params.yaml value, never tuned
    space: dict[str, Any] = dataclasses.field(default_factory=dict)  # losses.<name>.tune.space: replaced ranges

    @property
    def trains(self) -> bool:
        from lossbench.config.loss_options import loss_trains

        return loss_trains(self.type)

    def with_values(self, values: Mapping[str, Any]) -> LossSpec:
        """This spec with settings replaced: ``train.<key>`` keys in ``train``, the others in the options
        (validated like params.yaml's values)."""
        from lossbench.config.loss_options import build_options

        train = {k.removeprefix("train."): v for k, v in values.items() if k.startswith("train.")}
        options = {**self.options, **{k: v for k, v in values.items() if not k.startswith("train.")}}
        built = build_options(self.type, options, f"losses.{self.name}")
        return dataclasses.replace(
            self,
            options=dataclasses.asdict(built),
            train=_override(self.train, train, f"losses.{self.name}.train"),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "options": dict(self.options),
            "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
        }


@dataclass(frozen=True)
class Params:
    seed: int = field(ge=0)
    seeds: list[int] = field(ge=0, min_items=1, unique=True)
    loss: str
    threads: int | None = field(ge=1)
    data: DataConfig
    synthetic: SyntheticConfig
    model: ModelConfig
    train: TrainConfig
    losses: dict[str, Any]
    index: IndexConfig
    evaluate: EvaluateConfig
    stats: StatsConfig
    tune: TuneConfig

    def resolve_loss(self, name: str) -> LossSpec:
        """Merge ``losses.<name>`` over the global ``model`` and ``train`` sections and validate it."""
        from lossbench.config.loss_options import LOSS_OPTIONS, build_options

        if name not in self.losses:
            raise LossbenchError(
                f"loss '{name}' is not configured; configured losses: {', '.join(self.losses)}. "
                f"Add an entry under 'losses:' in params.yaml."
            )
        key = f"losses.{name}"
        entry = self.losses[name]
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            raise LossbenchError(f"params: '{key}' = {entry!r} must be a mapping of the loss's options.")
        entry = dict(entry)
        loss_type = entry.pop("type", name)
        if loss_type not in LOSS_OPTIONS:
            close = difflib.get_close_matches(str(loss_type), list(LOSS_OPTIONS), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise LossbenchError(
                f"params: '{key}' has unknown loss type {loss_type!r}.{hint} Known losses: {', '.join(LOSS_OPTIONS)}. "
                f"Name the entry after a known loss or give it 'type: <known loss>'."
            )
        model = _override(self.model, entry.pop("model", None), f"{key}.model")
        train = _override(self.train, entry.pop("train", None), f"{key}.train")
        pin, space = _tuning_entry(name, loss_type, entry.pop("tune", None))
        options = build_options(loss_type, entry, key, extra_keys=LOSS_ENTRY_KEYS)
        try:
            options.check_setup(model.backbone)
        except LossbenchError as exc:
            raise LossbenchError(f"params: '{key}': {exc}") from None
        return LossSpec(
            name=name,
            type=loss_type,
            options=dataclasses.asdict(options),
            model=model,
            train=train,
            pin=pin,
            space=space,
        )

    def loss_specs(self) -> list[LossSpec]:
        return [self.resolve_loss(name) for name in self.losses]


def _tuning_entry(name: str, loss_type: str, entry: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """``losses.<name>.tune``: ``pin`` (settings never tuned) and ``space`` (setting → replaced range), both
    optional, checked against the loss's search space."""
    from lossbench.config.loss_options import search_space

    key = f"losses.{name}.tune"
    entry = {} if entry is None else entry
    if not isinstance(entry, Mapping):
        raise LossbenchError(f"params: '{key}' = {entry!r} must be a mapping with 'pin' and/or 'space'.")
    unknown = set(entry) - {"pin", "space"}
    if unknown:
        raise LossbenchError(f"params: unknown key '{key}.{sorted(unknown)[0]}'; allowed: pin, space.")
    pin, space = entry.get("pin") or [], entry.get("space") or {}
    search_space(name, loss_type, pin, space)  # validates both, errors naming the key
    return tuple(pin), dict(space)


def _override(base: Any, overrides: Any, key: str) -> Any:
    """``base`` with the keys of ``overrides`` replaced (nested dataclasses merge recursively), validated."""
    if overrides is None:
        return base
    if not isinstance(overrides, Mapping):
        raise LossbenchError(f"params: '{key}' must be a mapping of overrides, got {overrides!r}.")
    merged = dataclasses.asdict(base)
    _deep_update(merged, overrides)
    return build(type(base), merged, key)


def _deep_update(target: dict, updates: Mapping) -> None:
    for k, v in updates.items():
        if isinstance(v, Mapping) and isinstance(target.get(k), dict):
            _deep_update(target[k], v)
        else:
            target[k] = v


def parse_params(raw: Any) -> Params:
    """Validate a params mapping (as read from params.yaml) and return :class:`Params`."""
    params = build(Params, raw)
    if not params.losses:
        raise LossbenchError("params: 'losses' is empty; configure at least one loss (e.g. 'baseline: {}').")
    if params.loss not in params.losses:
        raise LossbenchError(
            f"params: headline 'loss' = {params.loss!r} is not one of the configured losses: "
            f"{', '.join(params.losses)}. Use e.g. `dvc exp run -S loss={next(iter(params.losses))}`."
        )
    params.loss_specs()  # every entry: its options, its model/train/tune overrides and their fit
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    if not path.is_file():
        raise LossbenchError(f"{path} not found; run from the project root (where dvc.yaml and params.yaml are).")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LossbenchError(f"{path} is not valid YAML: {exc}") from None
    return parse_params({} if raw is None else raw)
