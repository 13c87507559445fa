"""Building blocks shared by the classification-style losses: a scaled linear classifier, center loss,
and a wrapper around pytorch-metric-learning's large-margin softmax losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LinearClassifier(nn.Module):
    """Cross-entropy of a plain linear classifier (with bias) applied to `scale` × the embeddings.

    Embeddings are unit vectors, so `scale` sets the logit range the classifier starts from.
    Its parameters train at `base_lr × lr_mult`.
    """

    def __init__(self, embed_dim: int, num_classes: int, scale: float, label_smoothing: float, lr_mult: float) -> None:
        super().__init__()
        self.fc = nn.Linear(embed_dim, num_classes)
        self.scale = scale
        self.label_smoothing = label_smoothing
        self.lr_mult = lr_mult

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.fc(embeddings * self.scale)
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)

    def param_groups(self, base_lr: float) -> list[dict]:
        return [{"params": list(self.fc.parameters()), "lr": base_lr * self.lr_mult, "name": "classifier"}]


class CenterLoss(nn.Module):
    """Center loss (Wen et al. 2016): 0.5 · mean over the batch of ‖x − c_y‖².

    The class centers start as random unit vectors and train at their own absolute learning rate
    `lr` without weight decay.
    """

    def __init__(self, embed_dim: int, num_classes: int, lr: float) -> None:
        super().__init__()
        self.centers = nn.Parameter(F.normalize(torch.randn(num_classes, embed_dim), dim=1))
        self.lr = lr

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        diff = embeddings - self.centers[labels]
        return 0.5 * diff.pow(2).sum(dim=1).mean()

    def param_groups(self, base_lr: float) -> list[dict]:
        return [{"params": [self.centers], "lr": self.lr, "weight_decay": 0.0, "name": "centers"}]


class MarginSoftmax(nn.Module):
    """A pytorch-metric-learning large-margin softmax loss (ArcFace, CosFace) whose class-weight
    matrix `W` (embed_dim × num_classes) trains at `base_lr × lr_mult`."""

    def __init__(self, pml_loss: nn.Module, lr_mult: float) -> None:
        super().__init__()
        self.pml_loss = pml_loss
        self.lr_mult = lr_mult

    @property
    def weight(self) -> nn.Parameter:
        """Class weights, D × C (pml layout); cosine logits are normalised x · normalised W."""
        return self.pml_loss.W

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.pml_loss(embeddings, labels)

    def param_groups(self, base_lr: float) -> list[dict]:
        return [{"params": [self.pml_loss.W], "lr": base_lr * self.lr_mult, "name": "class_weights"}]
