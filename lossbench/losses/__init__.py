"""Metric-learning losses behind one registry: `create_loss(name, num_classes, embed_dim, context=None, **options)`.

The option schemas (`lossbench.config.loss_options`: `LOSS_OPTIONS`, `loss_options`, `build_options`, `loss_trains`)
need no torch, so validating params stays light. The implementations, and torch with them, load on first use
of `LOSSES`, `create_loss`, `MetricLoss`, `LossContext` or `register_loss`.
"""

from __future__ import annotations

import importlib
from typing import Any

from lossbench.config.loss_options import LOSS_OPTIONS, build_options, loss_options, loss_trains

_LAZY = {
    "LOSSES": "registry",
    "create_loss": "registry",
    "register_loss": "registry",
    "MetricLoss": "base",
    "LossContext": "base",
}

__all__ = [
    "LOSSES",
    "LOSS_OPTIONS",
    "LossContext",
    "MetricLoss",
    "build_options",
    "create_loss",
    "loss_options",
    "loss_trains",
    "register_loss",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'lossbench.losses' has no attribute {name!r}")
    importlib.import_module("lossbench.losses.registry").load_implementations()
    return getattr(importlib.import_module(f"lossbench.losses.{_LAZY[name]}"), name)
