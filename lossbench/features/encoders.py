"""Encoders turn rows of the processed data set into model inputs and run a model over them in batches.

Two kinds share one interface so that the trainer, the feature cache and the embed stage never care
whether the backbone runs in the loop:

- :class:`ImageEncoder` — uint8 images → transform → ``model(images)`` (backbone in the loop);
- :class:`FeatureEncoder` — cached backbone features → ``model.embed_features(features)`` (head only).

A deterministic transform (the eval transform: resize + normalise) runs once per batch on the gathered
rows (:func:`batched_transform`, equal to the per-image result); a random one (training augmentation)
runs per image, single-threaded: intra-op threads on one small image only add synchronisation, which on
a busy machine costs milliseconds per operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np
import torch
from torch import nn

Transform = Callable[[np.ndarray], torch.Tensor]
BatchTransform = Callable[[np.ndarray], torch.Tensor]

GEOMETRIC_STEPS = ("Resize", "CenterCrop")
POINTWISE_STEPS = ("ToDtype", "Normalize", "ToPureTensor")
"""Deterministic torchvision ``v2`` transform steps (by class name): they treat every image alike, so they may
run on a whole batch at once. torchvision loads only when images are transformed: a run on cached features
never imports it (it costs seconds of start-up per stage)."""


def _steps(names: tuple[str, ...]) -> tuple[type, ...]:
    from torchvision.transforms import v2

    return tuple(getattr(v2, name) for name in names)


class Encoder(Protocol):
    def inputs(self, indices: np.ndarray, view: np.ndarray | None = None) -> torch.Tensor:
        """Model inputs for positions ``indices`` of this encoder's rows."""

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """Embeddings (or features) for a batch of inputs."""

    def backbone_features(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """What ``model.embed_features`` takes for a batch of inputs (the first half of a training forward)."""

    def __len__(self) -> int: ...


def batched_transform(transform: Transform) -> BatchTransform | None:
    """``transform`` applied to a whole ``N×H×W×3`` uint8 batch in one call; None unless it is deterministic.

    Recognises ``v2.Compose([ArrayToImage(), *geometric, *pointwise])`` with steps from
    :data:`GEOMETRIC_STEPS` then :data:`POINTWISE_STEPS` (what ``build_eval_transform`` builds). The
    geometric steps see the per-image path's memory layout (a channels-last view of the HWC rows, so
    resizing uses the same kernel); the batch is then made contiguous while still uint8, and the
    pointwise steps (layout-independent) run on it. The result equals stacking the per-image outputs.
    """
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    from lossbench.data.transforms import ArrayToImage

    steps = list(getattr(transform, "transforms", None) or [])
    if not isinstance(transform, v2.Compose) or not steps or not isinstance(steps.pop(0), ArrayToImage):
        return None
    geometric_steps, pointwise_steps = _steps(GEOMETRIC_STEPS), _steps(POINTWISE_STEPS)
    split = next((i for i, step in enumerate(steps) if not isinstance(step, geometric_steps)), len(steps))
    if not all(isinstance(step, pointwise_steps) for step in steps[split:]):
        return None
    geometric, pointwise = steps[:split], steps[split:]

    def apply(images: np.ndarray) -> torch.Tensor:
        batch = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2))
        for step in geometric:
            batch = step(batch)
        batch = batch.contiguous()
        for step in pointwise:
            batch = step(batch)
        return torch.as_tensor(batch).contiguous()

    return apply


@contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with one torch intra-op thread, then restore the previous count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class ImageEncoder:
    """Images held in a (memory-mapped) uint8 array, transformed on the fly (per batch when deterministic)."""

    def __init__(
        self, images: np.ndarray, rows: np.ndarray, transform: Transform, device: torch.device, call: str = "forward"
    ):
        self.images, self.rows, self.transform, self.device = images, np.asarray(rows), transform, device
        self.call = call  # "forward" (the embedding) or "features" (backbone only, for the feature cache)
        self.batched = batched_transform(transform)

    def __len__(self) -> int:
        return len(self.rows)

    def inputs(self, indices: np.ndarray, view: np.ndarray | None = None) -> torch.Tensor:
        images = np.asarray(self.images[self.rows[np.asarray(indices)]])  # one gather from the memmap
        if self.batched is not None and images.dtype == np.uint8 and images.ndim == 4 and images.shape[3] == 3:
            batch = self.batched(images)
        else:  # random transform (or an array ArrayToImage rejects, with its message)
            with single_thread():
                batch = torch.stack([self.transform(image) for image in images])
        return batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return getattr(model, self.call)(inputs)

    def backbone_features(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return model.features(inputs)


class FeatureEncoder:
    """Cached backbone features ``[views, rows, dim]``; training picks one view per sample."""

    def __init__(self, features: np.ndarray | torch.Tensor, device: torch.device):
        feats = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        self.features = feats if feats.ndim == 3 else feats.unsqueeze(0)
        self.device = device

    def __len__(self) -> int:
        return self.features.shape[1]

    @property
    def views(self) -> int:
        return self.features.shape[0]

    def inputs(self, indices: np.ndarray, view: np.ndarray | None = None) -> torch.Tensor:
        idx = torch.as_tensor(indices, dtype=torch.long)
        views = torch.zeros_like(idx) if view is None else torch.as_tensor(view, dtype=torch.long)
        return self.features[views, idx].to(self.device)

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return model.embed_features(inputs)

    def backbone_features(self, model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return inputs  # already the backbone's


def iter_batches(n: int, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive index batches covering all ``n`` items (the last one may be short: nothing dropped)."""
    for start in range(0, n, batch_size):
        yield np.arange(start, min(start + batch_size, n))


@torch.no_grad()
def encode_all(
    model: nn.Module,
    encoder: Encoder,
    batch_size: int,
    out: np.ndarray | None = None,
    flip_tta: bool = False,
    progress: str | None = None,
) -> np.ndarray:
    """Run ``model`` over every row of ``encoder`` in eval mode; write into ``out`` (e.g. a memmap) if given.

    With ``flip_tta`` the output is the normalised mean of the image and its horizontal mirror.
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    try:
        batches = iter_batches(len(encoder), batch_size)
        if progress:
            batches = tqdm(
                batches, total=-(-len(encoder) // batch_size), desc=progress, unit="batch", leave=False, disable=None
            )  # None: no bar when stderr is not a terminal
        chunks = []
        for idx in batches:
            inputs = encoder.inputs(idx)
            result = encoder.forward(model, inputs).float()
            if flip_tta:
                mirrored = encoder.forward(model, torch.flip(inputs, dims=[-1])).float()
                result = nn.functional.normalize(result + mirrored, dim=1)
            result = result.cpu().numpy()
            if out is None:
                chunks.append(result)
            else:
                out[idx[0] : idx[-1] + 1] = result
    finally:
        model.train(was_training)
    if out is not None:
        return out
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)
