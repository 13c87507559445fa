"""Nuisance: everything that changes from one image of an identity to the next (pose, yaw, lighting,
expression, background, clothing, occlusion, noise), and the image operations that apply its pose,
background, lighting and sensor noise (expression, clothing and occlusion are drawn with the face,
:mod:`lossbench.data.synthetic.face`).

``image_nuisance(seed, identity, image)`` reads its own numpy stream, seeded by ``(seed, identity, image)``
only, so an image does not depend on any other image or on the dataset size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from lossbench.data.synthetic.common import Color, Point, pick, to_color
from lossbench.data.synthetic.face import OCCLUSION_WEIGHTS
from lossbench.data.synthetic.traits import TRAIT_STREAM


@dataclass(frozen=True)
class Nuisance:
    """Everything that changes from one image of an identity to the next."""

    angle: float  # degrees
    scale: float
    shift: Point  # fraction of the canvas
    yaw: float  # -1..1, features slide sideways and the far side narrows
    light_angle: float
    light_strength: float
    brightness: float
    contrast: float
    smile: float  # -1 frown .. 1 open smile
    eye_open: float
    brow_raise: float
    gaze: Point
    background: tuple[Color, Color]
    background_angle: float
    clutter: int
    shirt_color: Color
    occlusion: str
    occlusion_place: Point
    occlusion_size: float
    occlusion_color: Color
    color_gain: tuple[float, float, float]
    hue_shift: float  # degrees, render style only
    noise_sigma: float  # photo style only
    blur: float  # photo style only, output pixels
    texture_seed: int


def sample_nuisance(rng: np.random.Generator) -> Nuisance:
    """Draw one image's nuisance (pose, lighting, expression, background, occlusion, noise) from ``rng``."""
    return Nuisance(
        angle=rng.uniform(-16, 16),
        scale=rng.uniform(0.82, 1.12),
        shift=(rng.uniform(-0.08, 0.08), rng.uniform(-0.07, 0.07)),
        yaw=rng.uniform(-0.7, 0.7),
        light_angle=rng.uniform(0, 2 * math.pi),
        light_strength=rng.uniform(0.0, 0.5),
        brightness=rng.uniform(0.72, 1.2),
        contrast=rng.uniform(0.7, 1.2),
        smile=rng.uniform(-0.5, 1.0),
        eye_open=rng.uniform(0.35, 1.1),
        brow_raise=rng.uniform(-0.04, 0.08),
        gaze=(rng.uniform(-0.25, 0.25), rng.uniform(-0.15, 0.15)),
        background=(to_color(rng.uniform(20, 235, 3)), to_color(rng.uniform(20, 235, 3))),
        background_angle=rng.uniform(0, 2 * math.pi),
        clutter=int(rng.integers(2, 9)),
        shirt_color=to_color(rng.uniform(10, 240, 3)),
        occlusion=pick(rng, OCCLUSION_WEIGHTS),
        occlusion_place=(rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.8)),
        occlusion_size=rng.uniform(0.7, 1.2),
        occlusion_color=to_color(rng.uniform(0, 255, 3)),
        color_gain=(rng.uniform(0.85, 1.15), rng.uniform(0.9, 1.1), rng.uniform(0.85, 1.15)),
        hue_shift=rng.uniform(-14, 14),
        noise_sigma=rng.uniform(3.0, 12.0),
        blur=rng.uniform(0.3, 1.1),
        texture_seed=int(rng.integers(2**31)),
    )


def image_nuisance(seed: int, identity: int, image: int) -> Nuisance:
    """Nuisance of image number ``image`` of an identity (independent of every other image)."""
    return sample_nuisance(np.random.default_rng([seed, identity, TRAIT_STREAM + 1 + image]))


def apply_pose(layer: Image.Image, nuisance: Nuisance) -> Image.Image:
    """Rotate, scale and shift the face layer about its centre (premultiplied to avoid dark fringes)."""
    size = layer.width
    center = size / 2
    tx, ty = nuisance.shift[0] * size, nuisance.shift[1] * size
    cos, sin = math.cos(math.radians(nuisance.angle)), math.sin(math.radians(nuisance.angle))
    a, b, d, e = cos / nuisance.scale, sin / nuisance.scale, -sin / nuisance.scale, cos / nuisance.scale
    c = center - a * (center + tx) - b * (center + ty)
    f = center - d * (center + tx) - e * (center + ty)
    moved = layer.convert("RGBa").transform(
        layer.size, Image.Transform.AFFINE, (a, b, c, d, e, f), resample=Image.Resampling.BILINEAR
    )
    return moved.convert("RGBA")


def _gradient(size: int, angle: float) -> np.ndarray:
    """A 0..1 linear ramp across a ``size`` square along ``angle``."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    ramp = coords[None, :] * math.cos(angle) + coords[:, None] * math.sin(angle)
    return (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)


def background(nuisance: Nuisance, canvas: int, rng: np.random.Generator, cluttered: bool) -> Image.Image:
    """Smooth gradient; ``cluttered`` (photos) adds a low-frequency texture and clutter shapes."""
    coarse = 32  # everything here is smooth: build it small, then upsample
    first, second = (np.array(c, dtype=np.float32) for c in nuisance.background)
    ramp = _gradient(coarse, nuisance.background_angle)[..., None]
    pixels = first * (1 - ramp) + second * ramp
    if cluttered:
        texture = 128 + 38 * rng.normal(size=(6, 6, 1)) + 10 * rng.normal(size=(6, 6, 3))
        blotches = Image.fromarray(np.clip(texture, 0, 255).astype(np.uint8)).resize(
            (coarse, coarse), Image.Resampling.BICUBIC
        )
        pixels = pixels + np.asarray(blotches, np.float32) - 128
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).resize(
        (canvas, canvas), Image.Resampling.BILINEAR
    )
    if cluttered:
        _draw_clutter(image, nuisance.clutter, rng)
    return image.convert("RGBA")


def _draw_clutter(image: Image.Image, count: int, rng: np.random.Generator) -> None:
    """Random muted rectangles, ellipses and poles: a cluttered room behind the person."""
    canvas = image.width
    draw = ImageDraw.Draw(image)
    for _ in range(count):
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * canvas
        w, h = rng.uniform(0.08, 0.5, 2) * canvas
        fill = to_color(rng.uniform(30, 220) + rng.normal(0, 25, 3))
        shape = int(rng.integers(3))
        if shape == 0:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=fill)
        elif shape == 1:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=fill)
        else:
            draw.line((x0, y0, x0 + w, y0 + h), fill=fill, width=max(1, int(canvas * rng.uniform(0.01, 0.05))))


def lighting(pixels: np.ndarray, alpha: np.ndarray, nuisance: Nuisance, cel_levels: int) -> np.ndarray:
    """Directional light, brightness and contrast; with ``cel_levels`` (cel-shaded styles) only the face is lit,
    in that many steps."""
    size = pixels.shape[0]
    light = 1 + nuisance.light_strength * 2 * (_gradient(size, nuisance.light_angle) - 0.5)
    if cel_levels:
        levels = cel_levels - 1
        light = 1 + np.round((light - 1) / max(nuisance.light_strength, 1e-6) * levels / 2) * (
            nuisance.light_strength / levels
        )
        light = (1 - alpha) + alpha * light
    pixels = pixels * light[..., None] * nuisance.brightness
    mean = pixels.mean()
    return (pixels - mean) * nuisance.contrast + mean


def add_sensor_noise(image: Image.Image, nuisance: Nuisance, rng: np.random.Generator) -> Image.Image:
    """Camera blur and Gaussian pixel noise (photos)."""
    size = image.width
    image = image.filter(ImageFilter.GaussianBlur(nuisance.blur * size / 96))
    noisy = np.asarray(image, np.float32) + rng.normal(0.0, nuisance.noise_sigma, (size, size, 3))
    return Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8))
