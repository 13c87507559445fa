"""`clip`: symmetric InfoNCE (CLIP) over image–image pairs of one identity, or image–prompt pairs."""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from lossbench.config.loss_options import ClipOptions
from lossbench.core.errors import LossbenchError
from lossbench.losses.base import LossContext, MetricLoss
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


def masked_symmetric_infonce(
    scale: torch.Tensor, a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean of CE(a→b) and CE(b→a) over logits scale · a · bᵀ with row i matching column i.

    An off-diagonal entry whose two sides share a label is masked (−inf): another view of the same identity
    is not a negative.
    """
    logits = scale * a @ b.T
    same_identity = labels[:, None] == labels[None, :]
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    logits = logits.masked_fill(same_identity & off_diagonal, float("-inf"))
    targets = torch.arange(len(labels), device=labels.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


@register_loss("clip")
class ClipLoss(MetricLoss):
    """CLIP's loss with identities as the matching signal.

    `pairs: image` — images of each identity are paired (see `identity_pairs`) and each image must find its
    partner among the other pairs' images. `pairs: text` (open_clip backbones) — as the source project did,
    every image is paired with its identity's prompt (`prompt`, `{}` = the identity's folder name), encoded
    once by the frozen open_clip text tower of the same weights and centred over the identities; a linear
    map (trained) takes it to the embedding space. Either way logits = exp(logit_scale) · a · bᵀ, the pair
    itself is the target in both directions and off-diagonal entries of the same identity are masked, not
    counted as negatives.
    `logit_scale` = log(1 / temperature) is learnable (as in open_clip, lr = base_lr, no weight decay)
    unless `learnable_temperature` is false, and exp(logit_scale) is capped at `max_logit_scale`.
    """

    Options = ClipOptions

    def __init__(
        self, num_classes: int, embed_dim: int, options: Options | None = None, context: LossContext | None = None
    ) -> None:
        super().__init__(num_classes, embed_dim, options, context)
        init = torch.tensor(math.log(1.0 / self.options.temperature))
        if self.options.learnable_temperature:
            self.logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("logit_scale", init)
        if self.options.pairs == "text":
            self._init_text_pairs()

    def _init_text_pairs(self) -> None:
        from lossbench.models.text import encode_prompts, identity_prompt

        names = self.context.class_names
        if len(names) != self.num_classes or self.num_classes < 2:
            raise LossbenchError(
                f"loss 'clip' with pairs: text needs one identity name per class ({self.num_classes}, at least 2), "
                f"got {len(names)}; pass LossContext(class_names=...)"
            )
        prompts = [identity_prompt(self.options.prompt, name) for name in names]
        features = encode_prompts(self.context.backbone, self.context.pretrained, prompts)
        if self.context.pretrained is None:
            warnings.warn(
                "loss 'clip' with pairs: text and model.pretrained: null encodes the prompts with a randomly "
                "initialised text tower: they tell the identities apart but carry no language prior",
                UserWarning,
                stacklevel=2,
            )
        # Prompts share their template, so their features are nearly parallel (cosine ~0.9): centring them
        # over the identities keeps what tells the identities apart, which a linear map learns from far faster.
        self.register_buffer("text_features", F.normalize(features - features.mean(0), dim=1))
        self.text_projection = nn.Linear(self.text_features.shape[1], self.embed_dim, bias=False)

    def scale(self) -> torch.Tensor:
        """The multiplier of the cosine logits, 1 / temperature, within [1, max_logit_scale]."""
        return self.logit_scale.clamp(0.0, math.log(self.options.max_logit_scale)).exp()

    def prompt_embeddings(self, labels: torch.Tensor) -> torch.Tensor:
        """Unit vectors of the prompts of ``labels`` in the image embedding space (``pairs: text``)."""
        return F.normalize(self.text_projection(self.text_features[labels]), dim=-1)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.options.pairs == "text":
            return masked_symmetric_infonce(self.scale(), embeddings, self.prompt_embeddings(labels), labels)
        a, b = identity_pairs(labels)
        if len(a) == 0:
            raise LossbenchError(
                "loss 'clip' found no identity with two images in the batch; "
                "sample batches with train.images_per_id >= 2 (P×K sampler)"
            )
        return masked_symmetric_infonce(self.scale(), embeddings[a], embeddings[b], labels[a])

    def param_groups(self, base_lr: float) -> list[dict]:
        groups = []
        if self.options.learnable_temperature:
            groups.append({"params": [self.logit_scale], "lr": base_lr, "weight_decay": 0.0, "name": "logit_scale"})
        if self.options.pairs == "text":
            groups.append({"params": list(self.text_projection.parameters()), "lr": base_lr, "name": "text_projection"})
        return groups
