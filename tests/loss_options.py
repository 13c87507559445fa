"""Complete option sets for creating losses in tests: loss options have no defaults (params.yaml gives them all)."""

from __future__ import annotations

from typing import Any

REFERENCE_OPTIONS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "arcface": {"scale": 64.0, "margin": 0.5, "weights_lr_mult": 10.0},
    "cosface": {"scale": 64.0, "margin": 0.35, "weights_lr_mult": 10.0},
    "triplet": {"margin": 0.2, "mining": "semihard"},
    "contrastive": {"pos_margin": 0.0, "neg_margin": 0.5},
    "clip": {
        "temperature": 0.07,
        "learnable_temperature": True,
        "max_logit_scale": 100.0,
        "pairs": "image",
        "prompt": "a photo of {}",
    },
    "supcon": {"temperature": 0.1},
    "center_ce": {
        "center_weight": 0.01,
        "center_lr": 0.01,
        "scale": 16.0,
        "label_smoothing": 0.0,
        "weights_lr_mult": 10.0,
    },
    "arcface_center": {
        "scale": 64.0,
        "margin": 0.5,
        "weights_lr_mult": 10.0,
        "center_weight": 0.01,
        "center_lr": 0.01,
        "ce_weight": 1.0,
        "ce_scale": 16.0,
    },
}
"""Every option of every loss (the values the schemas defaulted to before params.yaml became the only source)."""


def full_options(name: str, **overrides: Any) -> dict[str, Any]:
    """All options of loss ``name``: :data:`REFERENCE_OPTIONS` with ``overrides`` on top."""
    return {**REFERENCE_OPTIONS.get(name, {}), **overrides}
