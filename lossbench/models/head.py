"""Projection head: backbone features → L2-normalised embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lossbench.errors import LossbenchError

NORMS: dict[str, type[nn.Module]] = {"batchnorm": nn.BatchNorm1d, "layernorm": nn.LayerNorm, "none": nn.Identity}
ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU}


def _choose(registry: dict[str, type[nn.Module]], key: str, value: str) -> type[nn.Module]:
    if value not in registry:
        raise LossbenchError(f"model.{key}: {value!r} is not one of {sorted(registry)}")
    return registry[value]


class ProjectionHead(nn.Module):
    """``Linear → norm → activation → Dropout → Linear`` (or ``Dropout → Linear`` when ``hidden=0``), then L2 norm."""

    def __init__(
        self,
        in_features: int,
        embed_dim: int,
        hidden: int = 512,
        dropout: float = 0.0,
        norm: str = "batchnorm",
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        for key, value in (("in_features", in_features), ("embed_dim", embed_dim)):
            if value <= 0:
                raise LossbenchError(f"model.{key} must be positive, got {value}")
        if hidden < 0:
            raise LossbenchError(f"model.hidden must be >= 0 (0 = a single linear layer), got {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise LossbenchError(f"model.dropout must be in [0, 1), got {dropout}")
        self.in_features, self.embed_dim = in_features, embed_dim
        if hidden == 0:
            layers: list[nn.Module] = [nn.Dropout(dropout), nn.Linear(in_features, embed_dim)]
        else:
            layers = [
                nn.Linear(in_features, hidden),
                _choose(NORMS, "norm", norm)(hidden),
                _choose(ACTIVATIONS, "activation", activation)(),
                nn.Dropout(dropout),
                nn.Linear(hidden, embed_dim),
            ]
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(features), dim=-1)
