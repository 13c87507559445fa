"""Typed parameters: ``params.yaml`` → dataclasses, with errors that name the key, the value and the fix.

Every section is a dataclass whose fields carry their type, default and allowed range. The generic
:func:`build` walks a mapping into a dataclass, so adding a parameter is adding one field.
Per-loss entries under ``losses`` may override ``model.*`` and ``train.*`` for that loss only
(e.g. "ArcFace unfrozen, batch 128; Triplet frozen, batch 64"); :meth:`Params.resolve_loss` merges them.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from lossbench.errors import LossbenchError

BACKBONE_FAMILIES = ("timm", "open_clip", "hybrid")
MONITORS = ("val_top1", "val_top5", "val_mAP")


def _range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> dict:
    return {"range": (lo, hi, lo_open)}


def _choices(*allowed: str) -> dict:
    return {"choices": allowed}


@dataclass(frozen=True)
class DataConfig:
    original: str = "data/synthetic"
    image_size: int = field(default=64, metadata=_range(16, 1024))
    val_ids: float = field(default=0.15, metadata=_range(0.0, 0.9))
    test_ids: float = field(default=0.25, metadata=_range(0.0, 0.9))
    queries_per_id: int = field(default=2, metadata=_range(1))
    query_domain: str | None = "photo"
    min_images_per_id: int = field(default=2, metadata=_range(2))


@dataclass(frozen=True)
class SyntheticConfig:
    identities: int = field(default=200, metadata=_range(2))
    images_per_id: int = field(default=12, metadata=_range(2))
    image_size: int = field(default=96, metadata=_range(16, 1024))
    domains: list[str] = field(default_factory=lambda: ["photo", "render"])


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "timm:resnet18"
    pretrained: str | None = None
    freeze: bool = False
    input_size: int | None = field(default=None, metadata=_range(16, 1024))
    embed_dim: int = field(default=128, metadata=_range(2, 65536))
    hidden: int = field(default=512, metadata=_range(0, 65536))
    dropout: float = field(default=0.3, metadata=_range(0.0, 0.95))


@dataclass(frozen=True)
class AugmentConfig:
    crop_scale: list[float] = field(default_factory=lambda: [0.8, 1.0])
    hflip: bool = True
    color_jitter: float = field(default=0.2, metadata=_range(0.0, 1.0))


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = field(default=12, metadata=_range(1))
    ids_per_batch: int = field(default=16, metadata=_range(2))
    images_per_id: int = field(default=4, metadata=_range(2))
    lr: float = field(default=1.0e-3, metadata=_range(0.0, 10.0, lo_open=True))
    backbone_lr_mult: float = field(default=1.0, metadata=_range(0.0))
    weight_decay: float = field(default=1.0e-4, metadata=_range(0.0, 1.0))
    warmup_epochs: int = field(default=1, metadata=_range(0))
    grad_clip: float = field(default=5.0, metadata=_range(0.0))
    patience: int = field(default=5, metadata=_range(1))
    monitor: str = field(default="val_top5", metadata=_choices(*MONITORS))
    feature_views: int = field(default=4, metadata=_range(1, 64))
    eval_batch_size: int = field(default=256, metadata=_range(1))
    threads: int | None = field(default=None, metadata=_range(1))
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass(frozen=True)
class IndexConfig:
    factory: str = "Flat"
    threads: int | None = field(default=None, metadata=_range(1))
    nprobe: int | None = field(default=None, metadata=_range(1))
    ef_search: int | None = field(default=None, metadata=_range(1))


@dataclass(frozen=True)
class EvaluateConfig:
    topk: list[int] = field(default_factory=lambda: [1, 5, 10])
    far: list[float] = field(default_factory=lambda: [1.0e-3, 1.0e-4])
    flip_tta: bool = False
    batch_size: int = field(default=256, metadata=_range(1))
    tsne: bool = True
    examples: int = field(default=6, metadata=_range(0, 64))


@dataclass(frozen=True)
class LossSpec:
    """One entry of ``losses``, resolved: its type, options and effective model/train settings."""

    name: str
    type: str
    options: dict[str, Any]
    model: ModelConfig
    train: TrainConfig

    @property
    def trains(self) -> bool:
        from lossbench.losses.options import loss_trains

        return loss_trains(self.type)

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
    seed: int = field(default=0, metadata=_range(0))
    loss: str = "arcface"
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    losses: dict[str, dict] = field(default_factory=dict)
    index: IndexConfig = field(default_factory=IndexConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def resolve_loss(self, name: str) -> LossSpec:
        """Merge ``losses.<name>`` over the global ``model`` and ``train`` sections and validate it."""
        if name not in self.losses:
            raise LossbenchError(
                f"loss '{name}' is not configured; configured losses: {', '.join(self.losses)}. "
                f"Add an entry under 'losses:' in params.yaml."
            )
        entry = dict(self.losses[name] or {})
        key = f"losses.{name}"
        loss_type = entry.pop("type", name)
        model = _override(self.model, entry.pop("model", None), f"{key}.model")
        train = _override(self.train, entry.pop("train", None), f"{key}.train")
        options = _validate_loss_options(loss_type, entry, key, model.backbone)
        return LossSpec(name=name, type=loss_type, options=options, model=model, train=train)

    def loss_specs(self) -> list[LossSpec]:
        return [self.resolve_loss(name) for name in self.losses]


# ----------------------------------------------------------------------------------------- building


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if typing.get_origin(tp) is dict:
        return "a mapping"
    return {type(None): "null", bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (int → float, mapping → dataclass)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, key)
            except LossbenchError:
                continue
        raise _type_error(key, value, tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, value, tp)
        (item_type,) = typing.get_args(tp)
        return [_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _type_error(key, value, tp)
        return {str(k): (dict(v) if isinstance(v, Mapping) else v) for k, v in value.items()}
    if tp is type(None):
        if value is None:
            return None
        raise _type_error(key, value, tp)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" as a string; accept it as the number it obviously is
            return float(value)
        except ValueError:
            raise _type_error(key, value, tp) from None
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise _type_error(key, value, tp)


def _type_error(key: str, value: Any, tp: Any) -> LossbenchError:
    return LossbenchError(f"params: '{key}' = {value!r} has the wrong type; expected {_type_name(tp)}.")


def _check_metadata(value: Any, meta: Mapping, key: str) -> None:
    if value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        raise LossbenchError(f"params: '{key}' = {value!r} is not allowed; choose one of {list(meta['choices'])}.")
    if "range" in meta:
        lo, hi, lo_open = meta["range"]
        too_low = lo is not None and (value <= lo if lo_open else value < lo)
        if too_low or (hi is not None and value > hi):
            lo_text = "-inf" if lo is None else lo
            hi_text = "inf" if hi is None else hi
            bracket = "(" if lo_open else "["
            raise LossbenchError(f"params: '{key}' = {value!r} is out of range; allowed: {bracket}{lo_text}, {hi_text}].")


def _unknown_key_error(cls: type, key: str, unknown: str) -> LossbenchError:
    names = [f.name for f in dataclasses.fields(cls)]
    close = difflib.get_close_matches(unknown, names, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    where = f"'{key}.{unknown}'" if key else f"'{unknown}'"
    return LossbenchError(f"params: unknown key {where}.{hint} Allowed keys: {', '.join(names)}.")


def build(cls: type, data: Any, key: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, validating keys, types and ranges."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise LossbenchError(f"params: '{key or 'params.yaml'}' must be a mapping of keys, got {data!r}.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for unknown in data:
        if unknown not in names:
            raise _unknown_key_error(cls, key, str(unknown))
    values = {}
    for f in dataclasses.fields(cls):
        sub_key = f"{key}.{f.name}" if key else f.name
        if f.name not in data:
            continue
        value = _coerce(data[f.name], hints[f.name], sub_key)
        _check_metadata(value, f.metadata, sub_key)
        values[f.name] = value
    return cls(**values)


def _override(base: Any, overrides: Any, key: str) -> Any:
    """``base`` with the keys of ``overrides`` replaced (nested dataclasses merge recursively)."""
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


def _validate_loss_options(loss_type: str, options: Mapping, key: str, backbone: str) -> dict[str, Any]:
    """Types (with the key in the message), then choices, bounds and fit with ``backbone``, as the loss checks them."""
    from lossbench.losses.options import LOSS_OPTIONS, build_options, loss_options

    if loss_type not in LOSS_OPTIONS:
        close = difflib.get_close_matches(str(loss_type), list(LOSS_OPTIONS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise LossbenchError(
            f"params: '{key}' has unknown loss type {loss_type!r}.{hint} Known losses: {', '.join(LOSS_OPTIONS)}. "
            f"Name the entry after a known loss or give it 'type: <known loss>'."
        )
    defaults = loss_options(loss_type)
    resolved = dict(defaults)
    for name, value in options.items():
        if name not in defaults:
            close = difflib.get_close_matches(str(name), list(defaults), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            allowed = ", ".join([*defaults, "type", "model", "train"])
            raise LossbenchError(f"params: unknown option '{key}.{name}' for loss '{loss_type}'.{hint} Allowed: {allowed}.")
        default = defaults[name]
        expected = type(default) if default is not None else type(value)
        resolved[name] = _coerce(value, expected, f"{key}.{name}")
    try:
        build_options(loss_type, resolved).check_setup(backbone)
    except LossbenchError as exc:
        raise LossbenchError(f"params: '{key}': {exc}") from None
    return resolved


def _validate_backbone(spec: str, key: str) -> None:
    family, sep, name = spec.partition(":")
    if not sep or not name:
        raise LossbenchError(
            f"params: '{key}' = {spec!r} must look like '<family>:<name>' with family one of "
            f"{', '.join(BACKBONE_FAMILIES)} (e.g. 'timm:resnet18', 'open_clip:ViT-B-32', "
            f"'hybrid:timm:resnet101+timm:swin_tiny_patch4_window7_224')."
        )
    if family not in BACKBONE_FAMILIES:
        raise LossbenchError(f"params: '{key}' has unknown backbone family {family!r}; use one of {', '.join(BACKBONE_FAMILIES)}.")


def parse_params(raw: Mapping) -> Params:
    """Validate a params mapping (as read from params.yaml) and return :class:`Params`."""
    params = build(Params, raw)
    if not params.losses:
        raise LossbenchError("params: 'losses' is empty; configure at least one loss (e.g. 'arcface: {}').")
    if params.loss not in params.losses:
        raise LossbenchError(
            f"params: headline 'loss' = {params.loss!r} is not one of the configured losses: "
            f"{', '.join(params.losses)}. Use e.g. `dvc exp run -S loss={next(iter(params.losses))}`."
        )
    if params.data.val_ids + params.data.test_ids >= 1.0:
        raise LossbenchError(
            f"params: 'data.val_ids' + 'data.test_ids' = {params.data.val_ids + params.data.test_ids:g} "
            "leaves no identities for training; keep their sum below 1."
        )
    for spec in params.loss_specs():
        _validate_backbone(spec.model.backbone, f"losses.{spec.name}.model.backbone")
        lo, hi = spec.train.augment.crop_scale if len(spec.train.augment.crop_scale) == 2 else (None, None)
        if lo is None or not 0.0 < lo <= hi <= 1.0:
            raise LossbenchError(
                f"params: 'train.augment.crop_scale' = {spec.train.augment.crop_scale} must be two numbers "
                "0 < min <= max <= 1."
            )
    if any(k < 1 for k in params.evaluate.topk) or not params.evaluate.topk:
        raise LossbenchError(f"params: 'evaluate.topk' = {params.evaluate.topk} must be positive integers.")
    if any(not 0.0 < f < 1.0 for f in params.evaluate.far):
        raise LossbenchError(f"params: 'evaluate.far' = {params.evaluate.far} must be rates between 0 and 1.")
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    if not path.is_file():
        raise LossbenchError(f"{path} not found; run from the project root (where dvc.yaml and params.yaml are).")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise LossbenchError(f"{path} is not valid YAML: {exc}") from None
    return parse_params(raw)
