"""Shared vocabulary of the synthetic generator: colour and point types, colour rounding, a named choice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

Color = tuple[int, int, int]
Point = tuple[float, float]


def to_color(array: np.ndarray) -> Color:
    """An RGB triple of ints in 0..255 from any three numbers (rounded, clipped)."""
    return tuple(int(v) for v in np.clip(np.round(array), 0, 255))  # type: ignore[return-value]


def pick(rng: np.random.Generator, options: Sequence[str] | Mapping[str, float]) -> str:
    """One name from ``options``: uniformly from a sequence, by weight from a mapping."""
    names = list(options)
    if not isinstance(options, Mapping):
        return names[int(rng.integers(len(names)))]
    weights = np.array([options[name] for name in names], dtype=float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]
