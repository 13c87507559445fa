"""Heads: backbone features → L2-normalised embedding.

- ``mlp``: the trained projection head, ``Linear → BatchNorm → GELU → Dropout → Linear`` (or
  ``Dropout → Linear`` when ``hidden=0``), then L2 norm;
- ``normalise``: no weights, the L2-normalised features themselves (the untrained ``baseline`` row).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """The trained MLP projection head (see the module docstring)."""

    def __init__(self, in_features: int, embed_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.in_features, self.embed_dim = in_features, embed_dim
        if hidden == 0:
            layers: list[nn.Module] = [nn.Dropout(dropout), nn.Linear(in_features, embed_dim)]
        else:
            layers = [
                nn.Linear(in_features, hidden),
                nn.BatchNorm1d(hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, embed_dim),
            ]
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(features), dim=-1)


class NormaliseHead(nn.Module):
    """No parameters: the backbone's features, L2-normalised (``embed_dim`` = the feature width)."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.in_features = self.embed_dim = in_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features, dim=-1)


HEADS: dict[str, Callable[..., nn.Module]] = {
    "mlp": lambda in_features, model_cfg: ProjectionHead(
        in_features, model_cfg.embed_dim, model_cfg.hidden, model_cfg.dropout
    ),
    "normalise": lambda in_features, model_cfg: NormaliseHead(in_features),
}
"""Head kind → factory ``(in_features, model config) -> head``."""


def create_head(kind: str, in_features: int, model_cfg) -> nn.Module:
    """The head of ``kind`` (a key of :data:`HEADS`) for ``in_features``-wide backbone features."""
    return HEADS[kind](in_features, model_cfg)
