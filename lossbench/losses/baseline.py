"""`baseline`: no training objective; the reference row evaluates raw backbone features."""

from __future__ import annotations

import torch

from lossbench.config.loss_options import BaselineOptions
from lossbench.core.errors import LossbenchError
from lossbench.losses.base import MetricLoss
from lossbench.losses.registry import register_loss


@register_loss("baseline")
class BaselineLoss(MetricLoss):
    """Marks the untrained reference: `Options.trains` is False, so nothing should call `forward`."""

    Options = BaselineOptions  # trains = False

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise LossbenchError(
            "loss 'baseline' has no training objective (it evaluates raw backbone features); "
            "check `loss_trains(name)` and skip training for it"
        )
