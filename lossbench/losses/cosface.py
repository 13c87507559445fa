"""`cosface`: additive cosine margin softmax (Wang et al. 2018) via pytorch-metric-learning."""

from __future__ import annotations

import torch
from pytorch_metric_learning import losses as pml_losses

from lossbench.config.loss_options import CosFaceOptions
from lossbench.losses.base import LossContext, MetricLoss
from lossbench.losses.components import MarginSoftmax
from lossbench.losses.registry import register_loss


@register_loss("cosface")
class CosFaceLoss(MetricLoss):
    """CE over `scale` · (cos θ_y − margin) for the target class and `scale` · cos θ_j for the others.

    Class weights train at `base_lr × weights_lr_mult`.
    """

    uses_classes = True

    Options = CosFaceOptions

    def __init__(
        self, num_classes: int, embed_dim: int, options: Options | None = None, context: LossContext | None = None
    ) -> None:
        super().__init__(num_classes, embed_dim, options, context)
        opts = self.options
        pml_loss = pml_losses.CosFaceLoss(num_classes, embed_dim, margin=opts.margin, scale=opts.scale)
        self.head = MarginSoftmax(pml_loss, opts.weights_lr_mult)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head(embeddings, labels)
