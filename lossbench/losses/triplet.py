"""`triplet`: triplet margin loss on Euclidean distances with a choice of miner (pytorch-metric-learning)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from torch import nn

from lossbench.config.loss_options import TripletOptions
from lossbench.losses.base import LossContext, MetricLoss
from lossbench.losses.registry import register_loss

# mining → factory(margin) of the pml miner choosing the triplets (None: every valid triplet)
MINERS: dict[str, Callable[[float], nn.Module | None]] = {
    "all": lambda margin: pml_miners.TripletMarginMiner(margin=margin, type_of_triplets="all"),
    "hard": lambda margin: pml_miners.TripletMarginMiner(margin=margin, type_of_triplets="hard"),
    "semihard": lambda margin: pml_miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard"),
    "batch_hard": lambda margin: pml_miners.BatchHardMiner(),
    "none": lambda margin: None,
}


@register_loss("triplet")
class TripletLoss(MetricLoss):
    """relu(d(a, p) − d(a, n) + margin) averaged over the mined triplets with a positive loss.

    Mining: `all` — triplets violating the margin; `hard` — those whose negative is closer than the
    positive; `semihard` — violating but negative farther than the positive; `batch_hard` — per anchor
    the farthest positive and the closest negative; `none` — every valid triplet.
    """

    Options = TripletOptions

    def __init__(
        self, num_classes: int, embed_dim: int, options: Options | None = None, context: LossContext | None = None
    ) -> None:
        super().__init__(num_classes, embed_dim, options, context)
        self.miner = MINERS[self.options.mining](self.options.margin)
        self.loss_fn = pml_losses.TripletMarginLoss(margin=self.options.margin)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        triplets = None if self.miner is None else self.miner(embeddings, labels)
        return self.loss_fn(embeddings, labels, triplets)
