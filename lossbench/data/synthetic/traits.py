"""Identities: the traits that make a face recognisable, drawn once per identity and fixed for all its images.

``identity_traits(seed, identity)`` reads its own numpy stream, seeded by ``(seed, identity)`` only, so an
identity does not depend on any other identity or on the dataset size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lossbench.data.synthetic.common import Color, Point, pick, to_color
from lossbench.data.synthetic.face import BEARD_WEIGHTS, EYE_SHAPES, GLASSES_WEIGHTS, HAIR_STYLES, NOSE_STYLES

TRAIT_STREAM = 0
"""Stream number of an identity's traits; its image ``j`` uses stream ``TRAIT_STREAM + 1 + j``."""

SKIN_TONES = np.array(
    [[255, 226, 204], [240, 196, 163], [224, 170, 128], [196, 134, 96], [160, 102, 68], [118, 76, 52], [84, 56, 40]],
    dtype=float,
)
HAIR_COLORS = np.array(
    [
        [22, 18, 18],
        [58, 38, 26],
        [105, 68, 38],
        [160, 116, 66],
        [226, 196, 128],
        [158, 62, 28],
        [150, 150, 150],
        [232, 232, 226],
        [40, 64, 170],
        [196, 62, 146],
    ],
    dtype=float,
)
HAIR_COLOR_WEIGHTS = np.array([5, 5, 4, 3, 3, 2, 2, 1, 1, 1], dtype=float)
EYE_COLORS = np.array(
    [[72, 42, 20], [32, 22, 16], [60, 112, 184], [70, 132, 80], [112, 122, 132], [140, 100, 50]], dtype=float
)


@dataclass(frozen=True)
class FaceTraits:
    """What makes an identity recognisable; fixed for all its images."""

    face_width: float  # face half-width as a fraction of the canvas
    face_aspect: float  # half-height / half-width
    top_power: float  # superellipse exponent of the skull (2 = ellipse)
    jaw_power: float  # superellipse exponent of the jaw (low = pointed, high = square)
    chin_taper: float
    skin: Color
    hair_style: str
    hair_color: Color
    hairline: float
    eye_shape: str
    eye_color: Color
    eye_spacing: float
    eye_y: float
    eye_size: float
    brow_thickness: float
    brow_arch: float
    brow_tilt: float
    nose_style: str
    nose_length: float
    nose_width: float
    mouth_width: float
    lip_thickness: float
    lip_color: Color
    glasses: str
    glasses_color: Color
    beard: str
    ear_size: float
    mole: Point | None
    scar: tuple[float, float, float] | None  # x, y, angle in radians


def _palette_color(
    rng: np.random.Generator, palette: np.ndarray, weights: np.ndarray | None = None, jitter: float = 10.0
) -> Color:
    probs = None if weights is None else weights / weights.sum()
    base = palette[rng.choice(len(palette), p=probs)]
    return to_color(base + rng.normal(0.0, jitter, 3))


def _skin_tone(rng: np.random.Generator) -> Color:
    """A tone anywhere along the light-to-dark skin palette, slightly jittered."""
    position = rng.uniform(0, len(SKIN_TONES) - 1)
    stops = np.arange(len(SKIN_TONES))
    tone = np.array([np.interp(position, stops, SKIN_TONES[:, channel]) for channel in range(3)])
    return to_color(tone + rng.normal(0.0, 6.0, 3))


def sample_traits(rng: np.random.Generator) -> FaceTraits:
    """Draw one identity's traits from ``rng``."""
    skin = _skin_tone(rng)
    return FaceTraits(
        face_width=rng.uniform(0.2, 0.245),
        face_aspect=rng.uniform(1.12, 1.45),
        top_power=rng.uniform(2.0, 2.6),
        jaw_power=rng.uniform(1.5, 3.4),
        chin_taper=rng.uniform(0.0, 0.4),
        skin=skin,
        hair_style=pick(rng, tuple(HAIR_STYLES)),
        hair_color=_palette_color(rng, HAIR_COLORS, HAIR_COLOR_WEIGHTS),
        hairline=rng.uniform(-0.72, -0.5),
        eye_shape=pick(rng, tuple(EYE_SHAPES)),
        eye_color=_palette_color(rng, EYE_COLORS),
        eye_spacing=rng.uniform(0.33, 0.5),
        eye_y=rng.uniform(-0.22, -0.05),
        eye_size=rng.uniform(0.17, 0.26),
        brow_thickness=rng.uniform(0.035, 0.1),
        brow_arch=rng.uniform(-0.04, 0.1),
        brow_tilt=rng.uniform(-0.08, 0.1),
        nose_style=pick(rng, tuple(NOSE_STYLES)),
        nose_length=rng.uniform(0.22, 0.4),
        nose_width=rng.uniform(0.1, 0.2),
        mouth_width=rng.uniform(0.26, 0.5),
        lip_thickness=rng.uniform(0.025, 0.07),
        lip_color=to_color(np.array(skin) * np.array([0.8, 0.5, 0.5]) + rng.normal(0, 8, 3)),
        glasses=pick(rng, GLASSES_WEIGHTS),
        glasses_color=to_color(rng.uniform(0, 200, 3) * (rng.uniform() < 0.5)),
        beard=pick(rng, BEARD_WEIGHTS),
        ear_size=rng.uniform(0.15, 0.27),
        mole=(rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.55)) if rng.uniform() < 0.3 else None,
        scar=(rng.uniform(-0.6, 0.6), rng.uniform(-0.7, 0.5), rng.uniform(0, math.pi))
        if rng.uniform() < 0.15
        else None,
    )


def identity_traits(seed: int, identity: int) -> FaceTraits:
    """Traits of identity number ``identity`` under ``seed`` (independent of every other identity)."""
    return sample_traits(np.random.default_rng([seed, identity, TRAIT_STREAM]))
