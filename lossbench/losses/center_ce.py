"""`center_ce`: softmax cross-entropy on a linear classifier plus center loss (Wen et al. 2016)."""

from __future__ import annotations

import torch

from lossbench.config.loss_options import CenterCrossEntropyOptions
from lossbench.losses.base import LossContext, MetricLoss
from lossbench.losses.components import CenterLoss, LinearClassifier
from lossbench.losses.registry import register_loss


@register_loss("center_ce")
class CenterCrossEntropyLoss(MetricLoss):
    """CE(linear(scale · x), y) + center_weight · 0.5 · mean ‖x − c_y‖².

    Classifier weights train at `base_lr × weights_lr_mult`, centers at `center_lr`.
    """

    uses_classes = True

    Options = CenterCrossEntropyOptions

    def __init__(
        self, num_classes: int, embed_dim: int, options: Options | None = None, context: LossContext | None = None
    ) -> None:
        super().__init__(num_classes, embed_dim, options, context)
        opts = self.options
        self.classifier = LinearClassifier(
            embed_dim, num_classes, opts.scale, opts.label_smoothing, opts.weights_lr_mult
        )
        self.center = CenterLoss(embed_dim, num_classes, opts.center_lr)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.classifier(embeddings, labels) + self.options.center_weight * self.center(embeddings, labels)
