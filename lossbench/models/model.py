"""EmbeddingModel: backbone + projection head, with a frozen-backbone mode."""

from __future__ import annotations

import torch
from torch import nn

from lossbench.models.backbones import Backbone


class EmbeddingModel(nn.Module):
    """``images → backbone → head → L2-normalised embedding`` (the head: :mod:`lossbench.models.head`).

    With ``freeze=True`` the backbone's parameters do not require grad, it runs under ``no_grad`` and it stays
    in eval mode (BatchNorm statistics and dropout fixed) whatever ``.train()`` is called with, so its features
    can be cached once and fed to :meth:`embed_features`.
    """

    def __init__(self, backbone: Backbone, head: nn.Module, freeze: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.freeze = bool(freeze)
        if self.freeze:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    @property
    def embed_dim(self) -> int:
        return self.head.embed_dim

    def train(self, mode: bool = True) -> EmbeddingModel:
        super().train(mode)
        if self.freeze:
            self.backbone.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (``B×num_features``); no autograd graph when frozen."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            return self.backbone(images)

    def embed_features(self, features: torch.Tensor) -> torch.Tensor:
        """The head alone, on (possibly cached) backbone features."""
        return self.head(features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed_features(self.features(images))

    def param_groups(self, lr: float, backbone_lr: float | None = None) -> list[dict]:
        """Optimizer groups ``head`` (``lr``) and, unless frozen, ``backbone`` (``backbone_lr``, default ``lr``)."""
        groups = [{"name": "head", "params": list(self.head.parameters()), "lr": lr}]
        if not self.freeze:
            backbone_lr = lr if backbone_lr is None else backbone_lr
            groups.append({"name": "backbone", "params": list(self.backbone.parameters()), "lr": backbone_lr})
        return groups


class HeadModel(nn.Module):
    """The head of a frozen-backbone run on its own, for cached backbone features.

    A frozen run's backbone is the pretrained (or seeded) one its config names, so its checkpoint holds only the
    head; training and embedding from the feature cache never build the backbone. Same interface as
    :class:`EmbeddingModel` for the trainer and the encoders (``embed_features``, ``param_groups``).
    """

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head
        self.freeze = True

    @property
    def embed_dim(self) -> int:
        return self.head.embed_dim

    def embed_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def param_groups(self, lr: float, backbone_lr: float | None = None) -> list[dict]:
        return [{"name": "head", "params": list(self.head.parameters()), "lr": lr}]
