"""Domains: how a domain's style turns a face (traits + nuisance) into pixels, and the renderer itself.

Queries are "photos" (muted colours, soft shading, cluttered background, sensor noise); the gallery is
"render" (outlines, big eyes, saturated colours, cel shading, flat background, a palette hue shift).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from lossbench.core.errors import LossbenchError
from lossbench.data.synthetic.face import draw_face_layer
from lossbench.data.synthetic.nuisance import Nuisance, add_sensor_noise, apply_pose, background, lighting
from lossbench.data.synthetic.traits import FaceTraits

SUPERSAMPLE = 2
"""The face and background are drawn at this multiple of the output size, then reduced (anti-aliasing)."""


@dataclass(frozen=True)
class DomainStyle:
    """How a domain turns the same face into pixels."""

    outline: float  # outline width as a fraction of the canvas, 0 = none
    eye_scale: float
    saturation: float
    cluttered_background: bool
    soft_shading: bool
    cel_levels: int  # 0 = smooth lighting over the whole image, n = n-level lighting on the face only
    sensor_noise: bool


DOMAIN_STYLES: dict[str, DomainStyle] = {
    "photo": DomainStyle(
        outline=0.0,
        eye_scale=1.0,
        saturation=0.7,
        cluttered_background=True,
        soft_shading=True,
        cel_levels=0,
        sensor_noise=True,
    ),
    "render": DomainStyle(
        outline=0.014,
        eye_scale=1.3,
        saturation=1.6,
        cluttered_background=False,
        soft_shading=False,
        cel_levels=3,
        sensor_noise=False,
    ),
}


def domain_style(domain: str) -> DomainStyle:
    """The registered style of ``domain``; unknown names are a user error."""
    if domain not in DOMAIN_STYLES:
        raise LossbenchError(f"synthetic.domains: unknown domain {domain!r}; choose from {sorted(DOMAIN_STYLES)}")
    return DOMAIN_STYLES[domain]


def _soft_shading(pixels: np.ndarray, face_alpha: Image.Image) -> np.ndarray:
    """Darken the face towards its silhouette so it looks rounded."""
    radius = face_alpha.width * 0.08
    dome = np.asarray(face_alpha.filter(ImageFilter.GaussianBlur(radius)), np.float32) / 255
    alpha = np.asarray(face_alpha, np.float32) / 255
    return pixels * ((1 - alpha) + alpha * (0.72 + 0.28 * dome))[..., None]


def _recolor(image: Image.Image, nuisance: Nuisance, style: DomainStyle) -> Image.Image:
    """Saturation of the domain; photos get a white-balance cast, renders a palette hue shift."""
    image = ImageEnhance.Color(image).enhance(style.saturation)
    if style.sensor_noise:
        pixels = np.asarray(image, np.float32) * np.array(nuisance.color_gain, np.float32)
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(nuisance.hue_shift * 256 / 360)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def render_face(traits: FaceTraits, nuisance: Nuisance, domain: str, size: int) -> Image.Image:
    """Draw one ``size``×``size`` RGB image of a face with these traits and this nuisance in ``domain``'s style."""
    style = domain_style(domain)
    canvas = size * SUPERSAMPLE
    rng = np.random.default_rng(nuisance.texture_seed)
    layer = apply_pose(draw_face_layer(traits, nuisance, style, canvas), nuisance)
    composed = Image.alpha_composite(background(nuisance, canvas, rng, style.cluttered_background), layer).convert(
        "RGB"
    )
    composed = composed.reduce(SUPERSAMPLE)
    face_alpha = layer.getchannel("A").reduce(SUPERSAMPLE)
    pixels = np.asarray(composed, np.float32)
    if style.soft_shading:
        pixels = _soft_shading(pixels, face_alpha)
    pixels = lighting(pixels, np.asarray(face_alpha, np.float32) / 255, nuisance, style.cel_levels)
    image = _recolor(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), nuisance, style)
    if style.sensor_noise:
        image = add_sensor_noise(image, nuisance, rng)
    return image
