"""Test-wide settings: quiet progress bars, two torch threads, deterministic kernels."""

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

torch.set_num_threads(2)
