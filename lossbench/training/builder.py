"""Build the embedding model for a loss, seeded so that the backbone's random init never depends on the head."""

from __future__ import annotations

from typing import Any

import torch

from lossbench.models import EmbeddingModel, ProjectionHead, create_backbone


def build_model(model_cfg: Any, image_size: int, seed: int, load_pretrained: bool = True) -> EmbeddingModel:
    """``EmbeddingModel`` from a ``ModelConfig``-like object.

    The backbone is created right after seeding with ``seed`` and the head after seeding with ``seed + 1``,
    so the same backbone settings give bit-identical backbones (the feature cache relies on it).
    ``load_pretrained=False`` skips the pretrained weights: used when a checkpoint supplies every weight.
    """
    input_size = model_cfg.input_size or image_size
    torch.manual_seed(seed)
    backbone = create_backbone(model_cfg.backbone, model_cfg.pretrained if load_pretrained else None, input_size)
    torch.manual_seed(seed + 1)
    head = ProjectionHead(backbone.num_features, model_cfg.embed_dim, model_cfg.hidden, model_cfg.dropout)
    return EmbeddingModel(backbone, head, freeze=model_cfg.freeze)
