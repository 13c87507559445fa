"""Backbones (registry of ``family:name`` specs), projection head and the embedding model."""

from lossbench.models.backbones import FAMILIES, Backbone, create_backbone, register_family
from lossbench.models.head import NormaliseHead, ProjectionHead, create_head
from lossbench.models.model import EmbeddingModel, HeadModel

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
