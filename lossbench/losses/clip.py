"""`clip`: symmetric InfoNCE (CLIP) over pairs of images of the same identity within a batch."""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from lossbench.errors import LossbenchError
from lossbench.losses.base import MetricLoss, option
from lossbench.losses.registry import register_loss


def identity_pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (a, b) pairing consecutive batch positions of each identity: an identity at positions
    i0 < i1 < i2 < i3 < … gives (i0, i1), (i2, i3), …; K images give K // 2 pairs. Pairs are ordered by label."""
    order = torch.sort(labels, stable=True).indices
    _, counts = torch.unique_consecutive(labels[order], return_counts=True)
    group_start = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    rank = torch.arange(len(order), device=labels.device) - group_start
    group_size = torch.repeat_interleave(counts, counts)
    first = torch.nonzero((rank % 2 == 0) & (rank + 1 < group_size)).squeeze(1)
    return order[first], order[first + 1]


@register_loss("clip")
class ClipLoss(MetricLoss):
    """CLIP's loss with identities as the matching signal.

    Images of each identity are paired (see `identity_pairs`); logits = exp(logit_scale) · a · bᵀ with
    the pair itself as target in both directions; an off-diagonal entry whose two images share an
    identity is masked out (−inf), not counted as a negative. Loss = mean of the two cross-entropies.
    `logit_scale` = log(1 / temperature) is learnable (as in open_clip, lr = base_lr, no weight decay)
    unless `learnable_temperature` is false, and exp(logit_scale) is capped at `max_logit_scale`.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        temperature: float = option(0.07, gt=0)
        learnable_temperature: bool = True
        max_logit_scale: float = option(100.0, gt=1)

    def __init__(self, num_classes: int, embed_dim: int, options: Options | None = None) -> None:
        super().__init__(num_classes, embed_dim, options)
        init = torch.tensor(math.log(1.0 / self.options.temperature))
        if self.options.learnable_temperature:
            self.logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("logit_scale", init)

    def scale(self) -> torch.Tensor:
        """The multiplier of the cosine logits, 1 / temperature, within [1, max_logit_scale]."""
        return self.logit_scale.clamp(0.0, math.log(self.options.max_logit_scale)).exp()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        a, b = identity_pairs(labels)
        if len(a) == 0:
            raise LossbenchError(
                "loss 'clip' found no identity with two images in the batch; "
                "sample batches with train.images_per_id >= 2 (P×K sampler)"
            )
        logits = self.scale() * embeddings[a] @ embeddings[b].T
        pair_labels = labels[a]
        same_identity = pair_labels[:, None] == pair_labels[None, :]
        off_diagonal = ~torch.eye(len(a), dtype=torch.bool, device=labels.device)
        logits = logits.masked_fill(same_identity & off_diagonal, float("-inf"))
        targets = torch.arange(len(a), device=labels.device)
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2

    def param_groups(self, base_lr: float) -> list[dict]:
        if not self.options.learnable_temperature:
            return []
        return [{"params": [self.logit_scale], "lr": base_lr, "weight_decay": 0.0, "name": "logit_scale"}]
