"""Backbones (registry of ``family:name`` specs), projection head and the embedding model.

The names below load their module, and torch with it, on first use, so the torch-free submodules
(:mod:`~lossbench.models.resolve`, :mod:`~lossbench.models.pretrained`, :mod:`~lossbench.models.weights`) import
without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lossbench.models.backbones import FAMILIES, Backbone, create_backbone, register_family
    from lossbench.models.head import NormaliseHead, ProjectionHead, create_head
    from lossbench.models.model import EmbeddingModel, HeadModel

_LAZY = {
    "FAMILIES": "backbones",
    "Backbone": "backbones",
    "create_backbone": "backbones",
    "register_family": "backbones",
    "NormaliseHead": "head",
    "ProjectionHead": "head",
    "create_head": "head",
    "EmbeddingModel": "model",
    "HeadModel": "model",
}

__all__ = [
    "FAMILIES",
    "Backbone",
    "EmbeddingModel",
    "HeadModel",
    "NormaliseHead",
    "ProjectionHead",
    "create_backbone",
    "create_head",
    "register_family",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'lossbench.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lossbench.models.{_LAZY[name]}"), name)
