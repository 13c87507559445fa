"""Where and how torch runs: the device, the model's memory format on it, the number of CPU threads."""

from __future__ import annotations

import torch


def pick_device() -> torch.device:
    """The first CUDA device when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move the model and switch its conv weights to channels_last (the encoders feed channels_last batches).

    On the CPU too: EfficientNet-Lite0's depthwise convolutions ran about 2× faster in that layout
    (``bench/backbone_layout.py``); a model without 4-D weights is unaffected.
    """
    return model.to(device, memory_format=torch.channels_last)


def set_threads(threads: int | None) -> None:
    """Limit torch's intra-op threads (None keeps torch's default)."""
    if threads:
        torch.set_num_threads(threads)
