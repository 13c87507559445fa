"""`supcon`: supervised contrastive loss (Khosla et al. 2020) via pytorch-metric-learning."""

from __future__ import annotations

import torch
from pytorch_metric_learning import losses as pml_losses

from lossbench.config.loss_options import SupConOptions
from lossbench.losses.base import LossContext, MetricLoss
from lossbench.losses.registry import register_loss


@register_loss("supcon")
class SupConLoss(MetricLoss):
    """For each anchor i: −mean over positives p of log softmax_{a≠i}(cos(i, a) / T)[p]; averaged over the
    anchors that have a positive."""

    Options = SupConOptions

    def __init__(
        self, num_classes: int, embed_dim: int, options: Options | None = None, context: LossContext | None = None
    ) -> None:
        super().__init__(num_classes, embed_dim, options, context)
        self.loss_fn = pml_losses.SupConLoss(temperature=self.options.temperature)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(embeddings, labels)
