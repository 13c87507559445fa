"""Metric-learning losses behind one registry: `create_loss(name, num_classes, embed_dim, context=None, **options)`.

Importing this package registers every loss module below.
"""

from lossbench.losses import (  # noqa: F401  (imported for registration)
    arcface,
    arcface_center,
    baseline,
    center_ce,
    clip,
    contrastive,
    cosface,
    supcon,
    triplet,
)
from lossbench.losses.base import LossContext, MetricLoss
from lossbench.losses.registry import LOSSES, create_loss, loss_options, register_loss

__all__ = ["LOSSES", "LossContext", "MetricLoss", "create_loss", "loss_options", "register_loss"]
