"""The interface every loss implements, and the context a loss may need beyond its options."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from lossbench.config.loss_options import LossOptions


@dataclasses.dataclass(frozen=True)
class LossContext:
    """What a loss may need beyond sizes: the training identities' names (in class-id order) and the backbone."""

    class_names: tuple[str, ...] = ()
    backbone: str = ""
    pretrained: str | None = None


class MetricLoss(nn.Module):
    """A metric-learning loss on L2-normalised embeddings.

    Subclasses set `Options` (their schema in `lossbench.config.loss_options`) and take
    `(num_classes, embed_dim, options, context)`. Loss-owned parameters are reported by `param_groups`;
    by default the groups of child modules that define `param_groups` (shared components).
    """

    name: ClassVar[str] = ""
    uses_classes: ClassVar[bool] = False
    Options: ClassVar[type[LossOptions]] = LossOptions

    def __init__(
        self, num_classes: int, embed_dim: int, options: Any = None, context: LossContext | None = None
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.options = self.Options() if options is None else options
        self.context = LossContext() if context is None else context

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scalar loss of a batch: `embeddings` B×D (unit rows), `labels` B (long)."""
        raise NotImplementedError

    def param_groups(self, base_lr: float) -> list[dict]:
        """Optimizer parameter groups (`params`, `lr`, `name`, maybe `weight_decay`) of loss-owned parameters."""
        groups: list[dict] = []
        for child in self.children():
            if hasattr(child, "param_groups"):
                groups.extend(child.param_groups(base_lr))
        return groups
