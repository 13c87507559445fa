"""`contrastive`: pair-based contrastive loss (Hadsell et al. 2006) via pytorch-metric-learning."""

from __future__ import annotations

import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml_losses

from lossbench.config.loss_options import ContrastiveOptions
from lossbench.losses.base import LossContext, MetricLoss
from lossbench.losses.registry import register_loss


@register_loss("contrastive")
class ContrastiveLoss(MetricLoss):
    """mean⁺ relu(d_pos − pos_margin) + mean⁺ relu(neg_margin − d_neg) over all ordered pairs of the batch.

    d is the Euclidean distance (pml LpDistance; on unit vectors d = sqrt(2 − 2 cos), in [0, 2]), so
    margins are distances: positives are pulled closer than `pos_margin`, negatives pushed beyond
    `neg_margin`. mean⁺ averages over the pairs with a non-zero loss (pml AvgNonZeroReducer).
    """

    Options = ContrastiveOptions

    def __init__(
        self, num_classes: int, embed_dim: int, options: Options | None = None, context: LossContext | None = None
    ) -> None:
        super().__init__(num_classes, embed_dim, options, context)
        self.loss_fn = pml_losses.ContrastiveLoss(
            pos_margin=self.options.pos_margin,
            neg_margin=self.options.neg_margin,
            distance=pml_distances.LpDistance(p=2),
        )

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(embeddings, labels)
