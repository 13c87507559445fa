"""Name → loss class registry; `create_loss` validates options against the loss's schema (`options.py`).

The loss modules are discovered, not listed: every public module of this package other than the
infrastructure in :data:`INFRASTRUCTURE` is a loss module, and importing it registers its loss. Adding a loss
takes its schema in `options.py` and its module here, nothing else.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lossbench.config.loss_options import LOSS_OPTIONS, build_options, options_class
from lossbench.core.errors import LossbenchError
from lossbench.losses.base import LossContext, MetricLoss

LOSSES: dict[str, type[MetricLoss]] = {}
INFRASTRUCTURE = frozenset({"base", "components", "options", "registry"})
"""Modules of this package that implement no loss (private `_*` modules are skipped too)."""


@functools.cache
def loss_modules() -> tuple[str, ...]:
    """Names of the loss modules of this package, sorted: one module per loss."""
    found = pkgutil.iter_modules([str(Path(__file__).resolve().parent)])
    return tuple(
        sorted(
            info.name
            for info in found
            if not info.ispkg and not info.name.startswith("_") and info.name not in INFRASTRUCTURE
        )
    )


def load_implementations() -> dict[str, type[MetricLoss]]:
    """Import every loss module (registering each loss) and return `LOSSES`."""
    for module in loss_modules():
        importlib.import_module(f"lossbench.losses.{module}")
    return LOSSES


def register_loss(name: str) -> Callable[[type[MetricLoss]], type[MetricLoss]]:
    """Class decorator adding a `MetricLoss` subclass to `LOSSES` under `name`; its `Options` must be the
    schema registered for `name` in `lossbench.config.loss_options`."""

    def decorate(cls: type[MetricLoss]) -> type[MetricLoss]:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} is registered twice ({LOSSES[name].__name__}, {cls.__name__})")
        if LOSS_OPTIONS.get(name) is not cls.Options:
            raise ValueError(
                f"loss {name!r}: {cls.__name__}.Options must be the schema registered with "
                f"@options_for({name!r}) in lossbench/config/loss_options.py"
            )
        cls.name = name
        LOSSES[name] = cls
        return cls

    return decorate


def create_loss(
    type_name: str, num_classes: int, embed_dim: int, context: LossContext | None = None, **options: Any
) -> MetricLoss:
    """Instantiate loss `type_name` for `num_classes` training identities and `embed_dim`-dim embeddings.

    `context` (identity names, backbone) is needed only by losses that use it, e.g. `clip` with `pairs: text`.
    """
    options_class(type_name)  # unknown names: the error lists the known losses
    cls = load_implementations()[type_name]
    built = build_options(type_name, options)
    if embed_dim < 1:
        raise LossbenchError(f"loss {type_name!r}: embed_dim={embed_dim} must be >= 1")
    if cls.uses_classes and num_classes < 2:
        raise LossbenchError(
            f"loss {type_name!r} trains a classifier over identities but got num_classes={num_classes}; "
            "it needs at least 2 training identities"
        )
    return cls(num_classes, embed_dim, built, context)
