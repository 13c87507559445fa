"""`arcface_center`: ArcFace + center loss + cross-entropy on a plain linear classifier."""

from __future__ import annotations

import torch

from lossbench.config.loss_options import ArcFaceCenterOptions
from lossbench.losses.arcface import ArcFaceLoss
from lossbench.losses.base import LossContext, MetricLoss
from lossbench.losses.components import CenterLoss, LinearClassifier
from lossbench.losses.registry import register_loss


@register_loss("arcface_center")
class ArcFaceCenterLoss(MetricLoss):
    """ArcFace(scale, margin) + center_weight · CenterLoss + ce_weight · CE(linear(ce_scale · x), y).

    ArcFace class weights and the linear classifier train at `base_lr × weights_lr_mult`, centers at
    `center_lr`. `ce_scale` multiplies the unit embeddings before the linear classifier (as `scale` in
    `center_ce`); it is separate from the ArcFace `scale`, whose 64 would saturate a plain classifier.
    """

    uses_classes = True

    Options = ArcFaceCenterOptions

    def __init__(
        self, num_classes: int, embed_dim: int, options: Options | None = None, context: LossContext | None = None
    ) -> None:
        super().__init__(num_classes, embed_dim, options, context)
        opts = self.options
        arcface_options = ArcFaceLoss.Options(
            scale=opts.scale, margin=opts.margin, weights_lr_mult=opts.weights_lr_mult
        )
        self.arcface = ArcFaceLoss(num_classes, embed_dim, arcface_options)
        self.classifier = LinearClassifier(embed_dim, num_classes, opts.ce_scale, 0.0, opts.weights_lr_mult)
        self.center = CenterLoss(embed_dim, num_classes, opts.center_lr)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        opts = self.options
        return (
            self.arcface(embeddings, labels)
            + opts.center_weight * self.center(embeddings, labels)
            + opts.ce_weight * self.classifier(embeddings, labels)
        )
