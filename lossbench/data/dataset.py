"""A torch Dataset over rows of the processed uint8 image array."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lossbench.errors import LossbenchError


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 H x W x C -> float C x H x W in [0, 1] (the transform used when none is given)."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


class ImageArrayDataset(Dataset):
    """Items ``(transform(images[rows[i]]), labels[i], rows[i])``; ``images`` may be a read-only memmap."""

    def __init__(
        self,
        images: np.ndarray,
        rows: Sequence[int],
        labels: Sequence[int],
        transform: Callable[[np.ndarray], torch.Tensor] | None = None,
    ) -> None:
        self.images = images
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.rows.shape != self.labels.shape or self.rows.ndim != 1:
            raise LossbenchError(
                f"rows ({self.rows.shape}) and labels ({self.labels.shape}) must be 1-D and equally long"
            )
        if len(self.rows) and (self.rows.min() < 0 or self.rows.max() >= len(images)):
            raise LossbenchError(f"rows must index the {len(images)} images; got {self.rows.min()}..{self.rows.max()}")
        self.transform = transform or to_tensor

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        row = int(self.rows[index])
        image = np.array(self.images[row], dtype=np.uint8)  # a writable copy, detached from the memmap
        return self.transform(image), int(self.labels[index]), row
