"""Build the embedding model of a run, seeded so that the backbone's random init never depends on the head."""

from __future__ import annotations

from typing import Any

import torch

from lossbench.models.backbones import create_backbone
from lossbench.models.head import create_head
from lossbench.models.model import EmbeddingModel, HeadModel


def head_kind(trains: bool) -> str:
    """The head a loss gets: the trained MLP, or the normalise-only head of the untrained ``baseline``."""
    return "mlp" if trains else "normalise"


def build_model(
    model_cfg: Any, image_size: int, backbone_seed: int, head_seed: int, head: str, load_pretrained: bool = True
) -> EmbeddingModel:
    """``EmbeddingModel`` from a ``ModelConfig``-like object.

    The backbone is created right after seeding with ``backbone_seed`` and the head after seeding with
    ``head_seed``, so the same backbone settings give bit-identical backbones (the feature cache relies on it)
    whatever the head. ``load_pretrained=False`` skips the pretrained weights: used when a checkpoint supplies
    every weight.
    """
    input_size = model_cfg.input_size or image_size
    torch.manual_seed(backbone_seed)
    backbone = create_backbone(model_cfg.backbone, model_cfg.pretrained if load_pretrained else None, input_size)
    torch.manual_seed(head_seed)
    return EmbeddingModel(backbone, create_head(head, backbone.num_features, model_cfg), freeze=model_cfg.freeze)


def build_head_model(model_cfg: Any, num_features: int, head_seed: int, head: str) -> HeadModel:
    """The head alone (for a frozen backbone's cached features), initialised exactly as in :func:`build_model`."""
    torch.manual_seed(head_seed)
    return HeadModel(create_head(head, num_features, model_cfg))
