"""Image transforms: uint8 ``H×W×3`` numpy array → normalised float ``3×S×S`` tensor.

Random draws come from torch's global RNG (torchvision.transforms.v2 uses ``torch.rand``/``torch.randint``), so
``torch.manual_seed`` makes them reproducible; in DataLoader workers torch seeds each worker from the loader's
``generator`` (base seed + worker id), so a seeded generator makes multi-worker loading reproducible too.
Augmentations never flip vertically (faces are upright).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from lossbench.core.errors import LossbenchError


class ArrayToImage:
    """uint8 ``H×W×3`` array (a memmap row is fine) → ``tv_tensors.Image`` ``3×H×W`` uint8 (a copy)."""

    def __call__(self, array: np.ndarray) -> tv_tensors.Image:
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise LossbenchError(
                f"expected a uint8 H×W×3 RGB image array, got dtype {array.dtype} shape {array.shape}; "
                "re-run preprocess to rebuild data/processed/images.npy"
            )
        return tv_tensors.Image(torch.from_numpy(np.array(array, copy=True)).permute(2, 0, 1))


def _check_size(input_size: int) -> None:
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size <= 0:
        raise LossbenchError(f"input size must be a positive integer, got {input_size!r}")


def _finish(mean: Sequence[float], std: Sequence[float]) -> list:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std)), v2.ToPureTensor()]


def build_train_transform(
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    crop_scale: tuple[float, float] = (0.8, 1.0),
    hflip: bool = True,
    color_jitter: float = 0.2,
) -> v2.Compose:
    """Random resized crop (area share in ``crop_scale``) to ``input_size``, optional horizontal flip, colour
    jitter of brightness/contrast/saturation by ``±color_jitter`` (0 = off), then normalisation.

    ``crop_scale`` and ``color_jitter`` are ``train.augment.*``, validated when params load (lossbench/config/params.py)."""
    _check_size(input_size)
    low, high = crop_scale
    steps: list = [ArrayToImage(), v2.RandomResizedCrop(input_size, scale=(low, high), antialias=True)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    if color_jitter > 0:
        steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    return v2.Compose(steps + _finish(mean, std))


def build_eval_transform(input_size: int, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """Deterministic: resize to ``input_size×input_size`` (a no-op when the stored size matches), normalise."""
    _check_size(input_size)
    steps = [ArrayToImage(), v2.Resize((input_size, input_size), antialias=True)]
    return v2.Compose(steps + _finish(mean, std))
