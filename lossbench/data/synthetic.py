"""Deterministic synthetic face identities drawn in two styles: "photo" queries and "render" gallery.

Each identity has fixed traits (face shape, skin, hair, eyes, brows, nose, mouth, glasses, beard,
ears, marks); each image adds its own nuisance (pose, yaw, lighting, expression, background,
clothing, occlusion, noise). Every image is drawn from numpy streams seeded by
``(seed, identity index, image index)`` only, so images are independent of each other and of the
dataset size, and the same seed gives byte-identical PNG files. ``pixel_retrieval_top1`` measures how
hard the result is for raw pixels.

Geometry convention of the drawing helpers: a point ``(x, y)`` is in face units — ``x`` in face
half-widths and ``y`` in face half-heights from the face centre; lengths (radii, widths) are in
face half-widths so that circles stay round.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter
from tqdm import tqdm

from lossbench.errors import LossbenchError

SUPERSAMPLE = 2
TRAIT_STREAM = 0
Color = tuple[int, int, int]
Point = tuple[float, float]

EYE_SHAPES = {"round": 0.8, "almond": 0.52, "narrow": 0.34}  # eye height / eye width

SKIN_TONES = np.array(
    [[255, 226, 204], [240, 196, 163], [224, 170, 128], [196, 134, 96], [160, 102, 68], [118, 76, 52],
     [84, 56, 40]], dtype=float)
HAIR_COLORS = np.array(
    [[22, 18, 18], [58, 38, 26], [105, 68, 38], [160, 116, 66], [226, 196, 128], [158, 62, 28],
     [150, 150, 150], [232, 232, 226], [40, 64, 170], [196, 62, 146]], dtype=float)
HAIR_COLOR_WEIGHTS = np.array([5, 5, 4, 3, 3, 2, 2, 1, 1, 1], dtype=float)
EYE_COLORS = np.array(
    [[72, 42, 20], [32, 22, 16], [60, 112, 184], [70, 132, 80], [112, 122, 132], [140, 100, 50]], dtype=float)


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
    "photo": DomainStyle(outline=0.0, eye_scale=1.0, saturation=0.7, cluttered_background=True,
                         soft_shading=True, cel_levels=0, sensor_noise=True),
    "render": DomainStyle(outline=0.014, eye_scale=1.3, saturation=1.6, cluttered_background=False,
                          soft_shading=False, cel_levels=3, sensor_noise=False),
}


def _color(array: np.ndarray) -> Color:
    return tuple(int(v) for v in np.clip(np.round(array), 0, 255))  # type: ignore[return-value]


def _shade(color: Sequence[int], factor: float) -> Color:
    return _color(np.array(color[:3], dtype=float) * factor)


class _Pen:
    """Draws in face units on the face layer; adds dark outlines when the domain asks for them."""

    def __init__(self, layer: Image.Image, center: Point, half_width: float, half_height: float,
                 outline_px: int) -> None:
        self.draw = ImageDraw.Draw(layer)
        self.cx, self.cy = center
        self.fw, self.fh = half_width, half_height
        self.outline_px = outline_px

    def xy(self, x: float, y: float) -> Point:
        return (self.cx + x * self.fw, self.cy + y * self.fh)

    def _outline(self, fill: Color, outlined: bool) -> dict:
        if not (outlined and self.outline_px):
            return {}
        return {"outline": _shade(fill, 0.3), "width": self.outline_px}

    def ellipse(self, x: float, y: float, rx: float, ry: float, fill: Color, outlined: bool = True) -> None:
        cx, cy = self.xy(x, y)
        box = (cx - rx * self.fw, cy - ry * self.fw, cx + rx * self.fw, cy + ry * self.fw)
        self.draw.ellipse(box, fill=fill, **self._outline(fill, outlined))

    def polygon(self, points: Sequence[Point], fill: Color, outlined: bool = True) -> None:
        self.draw.polygon([self.xy(x, y) for x, y in points], fill=fill, **self._outline(fill, outlined))

    def line(self, points: Sequence[Point], width: float, fill: Color) -> None:
        self.draw.line([self.xy(x, y) for x, y in points], fill=fill, width=max(1, round(width * self.fw)),
                       joint="curve")

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: Color, radius: float = 0.0,
             outlined: bool = True) -> None:
        box = (*self.xy(x0, y0), *self.xy(x1, y1))
        self.draw.rounded_rectangle(box, radius=radius * self.fw, fill=fill, **self._outline(fill, outlined))


@dataclass(frozen=True)
class _Face:
    """Per-image face geometry derived from traits, nuisance and style."""

    traits: FaceTraits
    nuisance: Nuisance
    style: DomainStyle
    offset: float  # sideways slide of the inner features (yaw)
    squash: float  # horizontal narrowing of the outline (yaw)

    @property
    def mouth_y(self) -> float:
        return min(self.traits.eye_y + self.traits.nose_length + 0.27, 0.72)

    @property
    def nose_bottom(self) -> float:
        return self.traits.eye_y + self.traits.nose_length + 0.08

    def outline_points(self, grow: float = 1.0, count: int = 56) -> list[Point]:
        """The face contour: a superellipse with a separate jaw exponent and a tapering chin."""
        t = np.linspace(0, 2 * math.pi, count, endpoint=False)
        cos, sin = np.cos(t), np.sin(t)
        power = np.where(sin > 0, self.traits.jaw_power, self.traits.top_power)
        x = np.sign(cos) * np.abs(cos) ** (2 / power)
        y = np.sign(sin) * np.abs(sin) ** (2 / power)
        x = x * (1 - self.traits.chin_taper * np.clip(y, 0, None) ** 2)
        x = x * self.squash * grow + self.offset * 0.2
        return list(zip(x.tolist(), (y * grow).tolist()))

    @property
    def hair_x(self) -> float:
        return self.offset * 0.15

    @property
    def nose_x(self) -> float:
        return self.offset * 1.3

    @property
    def beard_color(self) -> Color:
        return _shade(self.traits.hair_color, 0.85)

    def eye_centers(self) -> list[Point]:
        return [(side * self.traits.eye_spacing + self.offset, self.traits.eye_y) for side in (-1, 1)]

    def far_side(self, side: float) -> float:
        """Shrink factor of a feature on ``side`` (the side the face is turning towards narrows)."""
        return 1 - 0.4 * abs(self.nuisance.yaw) if side * self.nuisance.yaw > 0 else 1.0


Drawer = Callable[[_Pen, _Face], None]


def _nothing(pen: _Pen, face: _Face) -> None:
    """Draw nothing (the empty choice of a registry)."""


def _hair_cap(pen: _Pen, face: _Face) -> None:
    pen.ellipse(face.hair_x, -0.42, 1.1 * face.squash, 0.75 * face.traits.face_aspect, face.traits.hair_color)


def _hair_sides(pen: _Pen, face: _Face) -> None:
    """A horseshoe of hair around a bald crown: only thin crescents show beside the temples."""
    pen.ellipse(face.hair_x, -0.2, 1.08 * face.squash, 0.42 * face.traits.face_aspect, face.traits.hair_color)


def _hair_long(pen: _Pen, face: _Face) -> None:
    pen.rect(face.hair_x - 1.12, -0.5, face.hair_x + 1.12, 1.35, face.traits.hair_color, radius=0.4)


def _hair_bob(pen: _Pen, face: _Face) -> None:
    pen.rect(face.hair_x - 1.14, -0.6, face.hair_x + 1.14, 0.55, face.traits.hair_color, radius=0.3)


def _hair_bun(pen: _Pen, face: _Face) -> None:
    pen.ellipse(face.hair_x, -1.28, 0.36, 0.36, face.traits.hair_color)


def _hair_curls(pen: _Pen, face: _Face) -> None:
    for angle in np.linspace(math.pi * 0.85, math.pi * 2.15, 11):
        pen.ellipse(face.hair_x + 1.05 * math.cos(angle), -0.3 + 0.85 * math.sin(angle), 0.3, 0.3,
                    face.traits.hair_color)


def _hair_spikes(pen: _Pen, face: _Face) -> None:
    x = face.hair_x
    for k in np.linspace(-0.85, 0.85, 7):
        pen.polygon([(x + k - 0.2, -0.8), (x + k * 1.2, -1.35 + 0.25 * abs(k)), (x + k + 0.2, -0.8)],
                    face.traits.hair_color)


def _fringe_arc(face: _Face) -> list[Point]:
    """Upper half-ellipse from the crown down to the identity's hairline."""
    line = face.traits.hairline
    return [(face.hair_x + 1.04 * face.squash * math.cos(a), line + (1.08 + line) * math.sin(a))
            for a in np.linspace(math.pi, 2 * math.pi, 15)]


def _fringe(pen: _Pen, face: _Face) -> None:
    pen.polygon(_fringe_arc(face), face.traits.hair_color)


def _fringe_straight(pen: _Pen, face: _Face) -> None:
    """Straight-cut bangs a little below the hairline."""
    line, x = face.traits.hairline, face.hair_x
    points = [(px, min(py, line)) for px, py in _fringe_arc(face)]
    pen.polygon(points + [(x + 0.95, line + 0.12), (x - 0.95, line + 0.12)], face.traits.hair_color)


def _fringe_swept(pen: _Pen, face: _Face) -> None:
    """Bangs swept to one side."""
    point = (face.hair_x + 0.9 * face.squash, face.traits.hairline + 0.2)
    pen.polygon(_fringe_arc(face) + [point], face.traits.hair_color)


def _mohawk(pen: _Pen, face: _Face) -> None:
    x, line = face.hair_x, face.traits.hairline
    pen.polygon([(x - 0.2, line), (x - 0.26, -1.45), (x + 0.26, -1.45), (x + 0.2, line)], face.traits.hair_color)


# hair style -> (shapes drawn behind the head, shape drawn over the forehead)
HAIR_STYLES: dict[str, tuple[tuple[Drawer, ...], Drawer]] = {
    "bald": ((_hair_sides,), _nothing),
    "short": ((_hair_cap,), _fringe),
    "long": ((_hair_cap, _hair_long), _fringe_straight),
    "bun": ((_hair_cap, _hair_bun), _fringe),
    "spiky": ((_hair_cap, _hair_spikes), _fringe),
    "curly": ((_hair_cap, _hair_curls), _fringe),
    "side_part": ((_hair_cap,), _fringe_swept),
    "mohawk": ((_hair_sides,), _mohawk),
    "bob": ((_hair_cap, _hair_bob), _fringe_straight),
}


def _draw_hair_back(pen: _Pen, face: _Face) -> None:
    for shape in HAIR_STYLES[face.traits.hair_style][0]:
        shape(pen, face)


def _draw_hair_front(pen: _Pen, face: _Face) -> None:
    HAIR_STYLES[face.traits.hair_style][1](pen, face)


def _draw_body(pen: _Pen, face: _Face) -> None:
    """Shoulders in the image's shirt colour and the neck."""
    pen.ellipse(0.0, 1.55 + 0.8 * (face.traits.face_aspect - 1.1), 2.2, 0.75, face.nuisance.shirt_color)
    pen.rect(-0.38, 0.5, 0.38, 1.3, _shade(face.traits.skin, 0.85), radius=0.1)


def _draw_ears(pen: _Pen, face: _Face) -> None:
    t = face.traits
    for side in (-1, 1):
        size = t.ear_size * face.far_side(-side)
        x = side * face.squash + face.offset * 0.2
        pen.ellipse(x, t.eye_y + 0.12, size * 0.55, size, _shade(t.skin, 0.92))
        pen.ellipse(x + side * 0.03, t.eye_y + 0.12, size * 0.25, size * 0.55, _shade(t.skin, 0.78), False)


def _draw_head(pen: _Pen, face: _Face) -> None:
    pen.polygon(face.outline_points(), face.traits.skin)


def _draw_eyes(pen: _Pen, face: _Face) -> None:
    """Sclera, iris (identity colour), pupil and a catch-light; openness and gaze vary per image."""
    t, n = face.traits, face.nuisance
    for side, (x, y) in zip((-1, 1), face.eye_centers()):
        width = t.eye_size * face.style.eye_scale * face.far_side(side)
        height = width * EYE_SHAPES[t.eye_shape] * n.eye_open
        pen.ellipse(x, y, width, height, (246, 244, 238))
        iris = min(width * 0.48, max(height, 0.02))
        ix, iy = x + n.gaze[0] * width, y + n.gaze[1] * height / t.face_aspect
        pen.ellipse(ix, iy, iris, min(iris, height * 0.95), t.eye_color, False)
        pen.ellipse(ix, iy, iris * 0.45, min(iris * 0.45, height * 0.6), (15, 12, 12), False)
        pen.ellipse(ix + iris * 0.3, iy - iris * 0.3 / t.face_aspect, iris * 0.14, iris * 0.14, (255, 255, 255),
                    False)


def _draw_brows(pen: _Pen, face: _Face) -> None:
    t, n = face.traits, face.nuisance
    color = _shade(t.hair_color, 0.8) if t.hair_style != "bald" else _shade(t.skin, 0.45)
    for side, (x, y) in zip((-1, 1), face.eye_centers()):
        width = t.eye_size * 1.25 * face.far_side(side)
        base = y - t.eye_size * 1.1 - n.brow_raise
        points = [(x - side * width * 0.9, base), (x, base - t.brow_arch - 0.02), (x + side * width, base + t.brow_tilt)]
        pen.line(points, t.brow_thickness, color)


def _nose_line(pen: _Pen, face: _Face) -> None:
    t, x = face.traits, face.nose_x
    bottom = face.nose_bottom
    pen.line([(x, t.eye_y + 0.08), (x + face.nuisance.yaw * 0.1, bottom), (x - t.nose_width, bottom - 0.02)],
             0.045, _shade(t.skin, 0.7))


def _nose_triangle(pen: _Pen, face: _Face) -> None:
    t, x = face.traits, face.nose_x
    pen.polygon([(x, t.eye_y + 0.08), (x - t.nose_width, face.nose_bottom), (x + t.nose_width, face.nose_bottom)],
                _shade(t.skin, 0.88))


def _nose_button(pen: _Pen, face: _Face) -> None:
    t, x = face.traits, face.nose_x
    pen.ellipse(x, face.nose_bottom - 0.04, t.nose_width, t.nose_width * 0.6, _shade(t.skin, 0.9))
    for side in (-1, 1):
        pen.ellipse(x + side * t.nose_width * 0.45, face.nose_bottom - 0.02, 0.035, 0.03, _shade(t.skin, 0.7), False)


NOSE_STYLES: dict[str, Drawer] = {"line": _nose_line, "triangle": _nose_triangle, "button": _nose_button}


def _draw_nose(pen: _Pen, face: _Face) -> None:
    NOSE_STYLES[face.traits.nose_style](pen, face)


def _mouth_curves(face: _Face) -> tuple[list[Point], list[Point]]:
    """Upper and lower lip contours, bent up by a smile and opened by a broad one."""
    t, smile = face.traits, face.nuisance.smile
    width = t.mouth_width * (1 + 0.15 * smile)
    xs = np.linspace(-1, 1, 11)
    bend = -smile * 0.09 * xs**2
    body = np.sqrt(1 - xs**2)
    opening = max(0.0, smile - 0.45) * 0.22
    x = (xs * width + face.offset * 1.15).tolist()
    upper = (face.mouth_y + bend - t.lip_thickness * body).tolist()
    lower = (face.mouth_y + bend + (t.lip_thickness * 1.3 + opening) * body).tolist()
    return list(zip(x, upper)), list(zip(x, lower))


def _draw_mouth(pen: _Pen, face: _Face) -> None:
    upper, lower = _mouth_curves(face)
    pen.polygon(upper + lower[::-1], face.traits.lip_color)
    if face.nuisance.smile > 0.45:
        mid = [(x, (yu + yl) / 2) for (x, yu), (_, yl) in zip(upper, lower)]
        inner_top = [(x, yu + 0.3 * (ym - yu)) for (x, yu), (_, ym) in zip(upper, mid)]
        inner_bottom = [(x, ym + 0.4 * (yl - ym)) for (x, ym), (_, yl) in zip(mid, lower)]
        pen.polygon(inner_top[1:-1] + inner_bottom[-2:0:-1], (60, 20, 25), False)
        pen.polygon(inner_top[2:-2] + [(x, y + 0.02) for x, y in inner_top[-3:1:-1]], (245, 245, 240), False)


def _beard_lower_face(face: _Face) -> list[Point]:
    return [(x, y) for x, y in face.outline_points(grow=1.03) if y > face.nose_bottom - 0.02]


def _beard_full(pen: _Pen, face: _Face) -> None:
    pen.polygon(_beard_lower_face(face), face.beard_color)


def _beard_chin_strap(pen: _Pen, face: _Face) -> None:
    lower = _beard_lower_face(face)
    start = face.nose_bottom - 0.02
    pen.polygon(lower, face.beard_color)
    pen.polygon([(x * 0.78 + face.offset * 0.05, start + (y - start) * 0.8) for x, y in lower], face.traits.skin,
                False)


def _beard_goatee(pen: _Pen, face: _Face) -> None:
    pen.ellipse(face.offset * 1.1, face.mouth_y + 0.2, 0.24, 0.13, face.beard_color)


def _moustache(pen: _Pen, face: _Face) -> None:
    t = face.traits
    x, y, width = face.offset * 1.15, face.mouth_y - t.lip_thickness - 0.03, t.mouth_width * 1.05
    pen.line([(x - width, y + 0.04), (x, y - 0.03), (x + width, y + 0.04)], 0.09, face.beard_color)


# beard style -> (drawn under the mouth, drawn over the mouth)
BEARD_STYLES: dict[str, tuple[Drawer, Drawer]] = {
    "none": (_nothing, _nothing),
    "full": (_beard_full, _moustache),
    "goatee": (_beard_goatee, _moustache),
    "moustache": (_nothing, _moustache),
    "chin_strap": (_beard_chin_strap, _nothing),
}
BEARD_WEIGHTS = {"none": 6.0, "full": 1.0, "goatee": 1.0, "moustache": 1.0, "chin_strap": 1.0}


def _draw_beard(pen: _Pen, face: _Face) -> None:
    BEARD_STYLES[face.traits.beard][0](pen, face)


def _draw_moustache(pen: _Pen, face: _Face) -> None:
    BEARD_STYLES[face.traits.beard][1](pen, face)


def _draw_marks(pen: _Pen, face: _Face) -> None:
    """The identity's mole and scar, if any."""
    t = face.traits
    if t.mole is not None:
        pen.ellipse(t.mole[0] * face.squash + face.offset, t.mole[1], 0.04, 0.04, (70, 45, 35), False)
    if t.scar is not None:
        x, y, angle = t.scar
        dx, dy = 0.18 * math.cos(angle), 0.12 * math.sin(angle)
        x = x * face.squash + face.offset
        pen.line([(x - dx, y - dy), (x + dx, y + dy)], 0.035, _color(np.array(t.skin) * [0.8, 0.55, 0.55]))


FrameDrawer = Callable[[_Pen, Point, Point, Color], None]
FRAME_WIDTH = 0.05


def _frame_round(pen: _Pen, center: Point, radius: Point, color: Color) -> None:
    (x, y), (rx, ry) = center, radius
    pen.line([(x + rx * math.cos(a), y + ry * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 25)],
             FRAME_WIDTH, color)


def _frame_square(pen: _Pen, center: Point, radius: Point, color: Color) -> None:
    (x, y), (rx, ry) = center, radius
    pen.line([(x - rx, y - ry), (x + rx, y - ry), (x + rx, y + ry), (x - rx, y + ry), (x - rx, y - ry)],
             FRAME_WIDTH, color)


def _frame_half_rim(pen: _Pen, center: Point, radius: Point, color: Color) -> None:
    (x, y), (rx, ry) = center, radius
    pen.line([(x - rx, y - ry), (x + rx, y - ry)], FRAME_WIDTH * 2.2, color)
    pen.line([(x - rx, y - ry), (x - rx * 0.8, y + ry), (x + rx * 0.8, y + ry), (x + rx, y - ry)],
             FRAME_WIDTH * 0.6, color)


GLASSES_STYLES: dict[str, FrameDrawer | None] = {
    "none": None, "round": _frame_round, "square": _frame_square, "half_rim": _frame_half_rim}
GLASSES_WEIGHTS = {"none": 3.0, "round": 1.0, "square": 1.0, "half_rim": 1.0}


def _draw_glasses(pen: _Pen, face: _Face) -> None:
    """Two frames of the identity's style and colour, a bridge and the arms towards the ears."""
    t = face.traits
    frame = GLASSES_STYLES[t.glasses]
    if frame is None:
        return
    grow = face.style.eye_scale ** 0.5
    inner_edges = []
    for side, (x, y) in zip((-1, 1), face.eye_centers()):
        rx = t.eye_size * 1.45 * grow * face.far_side(side)
        frame(pen, (x, y), (rx, t.eye_size * 1.05 * grow / t.face_aspect), t.glasses_color)
        pen.line([(x + side * rx, y), (side * face.squash + face.offset * 0.2, y - 0.02)], FRAME_WIDTH,
                 t.glasses_color)
        inner_edges.append((x - side * rx, y))
    pen.line([inner_edges[0], (face.offset, inner_edges[0][1] - 0.05), inner_edges[1]], FRAME_WIDTH,
             t.glasses_color)


def _occlude_bar(pen: _Pen, face: _Face) -> None:
    """A band across the face (scarf, sign, censor bar)."""
    n = face.nuisance
    y, size = n.occlusion_place[1], n.occlusion_size
    pen.rect(-1.3, y - 0.16 * size, 1.3, y + 0.16 * size, n.occlusion_color)


def _occlude_hand(pen: _Pen, face: _Face) -> None:
    """A palm with four fingers raised in front of the face."""
    (x, y), size = face.nuisance.occlusion_place, face.nuisance.occlusion_size
    skin = _shade(face.traits.skin, 0.95)
    pen.ellipse(x, y + 0.35, 0.42 * size, 0.4 * size, skin)
    for k in range(4):
        left = x + (k - 1.5) * 0.2 * size - 0.08 * size
        pen.rect(left, y - 0.25 * size, left + 0.16 * size, y + 0.4, skin, radius=0.08 * size)


def _occlude_object(pen: _Pen, face: _Face) -> None:
    """A held object (phone, cup) in front of part of the face."""
    n = face.nuisance
    (x, y), size = n.occlusion_place, n.occlusion_size
    pen.rect(x - 0.3 * size, y, x + 0.3 * size, y + 0.55 * size * face.traits.face_aspect, n.occlusion_color,
             radius=0.08)


def _occlude_hat(pen: _Pen, face: _Face) -> None:
    """A hat hiding the hair."""
    n = face.nuisance
    line = face.traits.hairline + 0.15 * n.occlusion_size - 0.1
    crown = [(1.15 * math.cos(a), line + 0.75 * math.sin(a)) for a in np.linspace(math.pi, 2 * math.pi, 15)]
    pen.polygon(crown, n.occlusion_color)
    pen.rect(-1.35, line - 0.05, 1.35, line + 0.12, n.occlusion_color, radius=0.05)


OCCLUSIONS: dict[str, Drawer] = {
    "none": _nothing, "bar": _occlude_bar, "hand": _occlude_hand, "object": _occlude_object, "hat": _occlude_hat}
OCCLUSION_WEIGHTS = {"none": 7.0, "bar": 1.0, "hand": 1.0, "object": 1.0, "hat": 1.0}


def _draw_occlusion(pen: _Pen, face: _Face) -> None:
    OCCLUSIONS[face.nuisance.occlusion](pen, face)


DRAWING_ORDER: tuple[Drawer, ...] = (
    _draw_hair_back, _draw_body, _draw_ears, _draw_head, _draw_beard, _draw_marks, _draw_eyes, _draw_brows,
    _draw_nose, _draw_mouth, _draw_moustache, _draw_hair_front, _draw_glasses, _draw_occlusion)


def _draw_face_layer(traits: FaceTraits, nuisance: Nuisance, style: DomainStyle, canvas: int) -> Image.Image:
    """The person on a transparent layer, upright and centred (pose is applied afterwards)."""
    layer = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    half_width = traits.face_width * canvas
    pen = _Pen(layer, (canvas / 2, canvas / 2), half_width, half_width * traits.face_aspect,
               round(style.outline * canvas))
    face = _Face(traits, nuisance, style, offset=0.3 * nuisance.yaw, squash=1 - 0.12 * abs(nuisance.yaw))
    for step in DRAWING_ORDER:
        step(pen, face)
    return layer


def _pick(rng: np.random.Generator, options: Sequence[str] | Mapping[str, float]) -> str:
    """One name from ``options``: uniformly from a sequence, by weight from a mapping."""
    names = list(options)
    if not isinstance(options, Mapping):
        return names[int(rng.integers(len(names)))]
    weights = np.array([options[name] for name in names], dtype=float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def _palette_color(rng: np.random.Generator, palette: np.ndarray, weights: np.ndarray | None = None,
                   jitter: float = 10.0) -> Color:
    probs = None if weights is None else weights / weights.sum()
    base = palette[rng.choice(len(palette), p=probs)]
    return _color(base + rng.normal(0.0, jitter, 3))


def _skin_tone(rng: np.random.Generator) -> Color:
    """A tone anywhere along the light-to-dark skin palette, slightly jittered."""
    position = rng.uniform(0, len(SKIN_TONES) - 1)
    stops = np.arange(len(SKIN_TONES))
    tone = np.array([np.interp(position, stops, SKIN_TONES[:, channel]) for channel in range(3)])
    return _color(tone + rng.normal(0.0, 6.0, 3))


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
        hair_style=_pick(rng, tuple(HAIR_STYLES)),
        hair_color=_palette_color(rng, HAIR_COLORS, HAIR_COLOR_WEIGHTS),
        hairline=rng.uniform(-0.72, -0.5),
        eye_shape=_pick(rng, tuple(EYE_SHAPES)),
        eye_color=_palette_color(rng, EYE_COLORS),
        eye_spacing=rng.uniform(0.33, 0.5),
        eye_y=rng.uniform(-0.22, -0.05),
        eye_size=rng.uniform(0.17, 0.26),
        brow_thickness=rng.uniform(0.035, 0.1),
        brow_arch=rng.uniform(-0.04, 0.1),
        brow_tilt=rng.uniform(-0.08, 0.1),
        nose_style=_pick(rng, tuple(NOSE_STYLES)),
        nose_length=rng.uniform(0.22, 0.4),
        nose_width=rng.uniform(0.1, 0.2),
        mouth_width=rng.uniform(0.26, 0.5),
        lip_thickness=rng.uniform(0.025, 0.07),
        lip_color=_color(np.array(skin) * np.array([0.8, 0.5, 0.5]) + rng.normal(0, 8, 3)),
        glasses=_pick(rng, GLASSES_WEIGHTS),
        glasses_color=_color(rng.uniform(0, 200, 3) * (rng.uniform() < 0.5)),
        beard=_pick(rng, BEARD_WEIGHTS),
        ear_size=rng.uniform(0.15, 0.27),
        mole=(rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.55)) if rng.uniform() < 0.3 else None,
        scar=(rng.uniform(-0.6, 0.6), rng.uniform(-0.7, 0.5), rng.uniform(0, math.pi))
        if rng.uniform() < 0.15 else None,
    )


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
        background=(_color(rng.uniform(20, 235, 3)), _color(rng.uniform(20, 235, 3))),
        background_angle=rng.uniform(0, 2 * math.pi),
        clutter=int(rng.integers(2, 9)),
        shirt_color=_color(rng.uniform(10, 240, 3)),
        occlusion=_pick(rng, OCCLUSION_WEIGHTS),
        occlusion_place=(rng.uniform(-0.6, 0.6), rng.uniform(-0.3, 0.8)),
        occlusion_size=rng.uniform(0.7, 1.2),
        occlusion_color=_color(rng.uniform(0, 255, 3)),
        color_gain=(rng.uniform(0.85, 1.15), rng.uniform(0.9, 1.1), rng.uniform(0.85, 1.15)),
        hue_shift=rng.uniform(-14, 14),
        noise_sigma=rng.uniform(3.0, 12.0),
        blur=rng.uniform(0.3, 1.1),
        texture_seed=int(rng.integers(2**31)),
    )


def identity_traits(seed: int, identity: int) -> FaceTraits:
    """Traits of identity number ``identity`` under ``seed`` (independent of every other identity)."""
    return sample_traits(np.random.default_rng([seed, identity, TRAIT_STREAM]))


def image_nuisance(seed: int, identity: int, image: int) -> Nuisance:
    """Nuisance of image number ``image`` of an identity (independent of every other image)."""
    return sample_nuisance(np.random.default_rng([seed, identity, TRAIT_STREAM + 1 + image]))


def _pose(layer: Image.Image, nuisance: Nuisance) -> Image.Image:
    """Rotate, scale and shift the face layer about its centre (premultiplied to avoid dark fringes)."""
    size = layer.width
    center = size / 2
    tx, ty = nuisance.shift[0] * size, nuisance.shift[1] * size
    cos, sin = math.cos(math.radians(nuisance.angle)), math.sin(math.radians(nuisance.angle))
    a, b, d, e = cos / nuisance.scale, sin / nuisance.scale, -sin / nuisance.scale, cos / nuisance.scale
    c = center - a * (center + tx) - b * (center + ty)
    f = center - d * (center + tx) - e * (center + ty)
    moved = layer.convert("RGBa").transform(layer.size, Image.Transform.AFFINE, (a, b, c, d, e, f),
                                            resample=Image.Resampling.BILINEAR)
    return moved.convert("RGBA")


def _gradient(size: int, angle: float) -> np.ndarray:
    """A 0..1 linear ramp across a ``size`` square along ``angle``."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    ramp = coords[None, :] * math.cos(angle) + coords[:, None] * math.sin(angle)
    return (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)


def _background(nuisance: Nuisance, style: DomainStyle, canvas: int, rng: np.random.Generator) -> Image.Image:
    """Smooth gradient; photos add a low-frequency texture and clutter shapes."""
    coarse = 32  # everything here is smooth: build it small, then upsample
    first, second = (np.array(c, dtype=np.float32) for c in nuisance.background)
    ramp = _gradient(coarse, nuisance.background_angle)[..., None]
    pixels = first * (1 - ramp) + second * ramp
    if style.cluttered_background:
        texture = 128 + 38 * rng.normal(size=(6, 6, 1)) + 10 * rng.normal(size=(6, 6, 3))
        blotches = Image.fromarray(np.clip(texture, 0, 255).astype(np.uint8)).resize((coarse, coarse),
                                                                                    Image.Resampling.BICUBIC)
        pixels = pixels + np.asarray(blotches, np.float32) - 128
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).resize((canvas, canvas),
                                                                            Image.Resampling.BILINEAR)
    if style.cluttered_background:
        _draw_clutter(image, nuisance.clutter, rng)
    return image.convert("RGBA")


def _draw_clutter(image: Image.Image, count: int, rng: np.random.Generator) -> None:
    """Random muted rectangles, ellipses and poles: a cluttered room behind the person."""
    canvas = image.width
    draw = ImageDraw.Draw(image)
    for _ in range(count):
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * canvas
        w, h = rng.uniform(0.08, 0.5, 2) * canvas
        fill = _color(rng.uniform(30, 220) + rng.normal(0, 25, 3))
        shape = int(rng.integers(3))
        if shape == 0:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=fill)
        elif shape == 1:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=fill)
        else:
            draw.line((x0, y0, x0 + w, y0 + h), fill=fill, width=max(1, int(canvas * rng.uniform(0.01, 0.05))))


def _lighting(pixels: np.ndarray, alpha: np.ndarray, nuisance: Nuisance, style: DomainStyle) -> np.ndarray:
    """Directional light, brightness and contrast; cel-shaded styles light only the face, in steps."""
    size = pixels.shape[0]
    light = 1 + nuisance.light_strength * 2 * (_gradient(size, nuisance.light_angle) - 0.5)
    if style.cel_levels:
        levels = style.cel_levels - 1
        light = 1 + np.round((light - 1) / max(nuisance.light_strength, 1e-6) * levels / 2) * (
            nuisance.light_strength / levels)
        light = (1 - alpha) + alpha * light
    pixels = pixels * light[..., None] * nuisance.brightness
    mean = pixels.mean()
    return (pixels - mean) * nuisance.contrast + mean


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
    layer = _pose(_draw_face_layer(traits, nuisance, style, canvas), nuisance)
    composed = Image.alpha_composite(_background(nuisance, style, canvas, rng), layer).convert("RGB")
    composed = composed.reduce(SUPERSAMPLE)
    face_alpha = layer.getchannel("A").reduce(SUPERSAMPLE)
    pixels = np.asarray(composed, np.float32)
    if style.soft_shading:
        pixels = _soft_shading(pixels, face_alpha)
    pixels = _lighting(pixels, np.asarray(face_alpha, np.float32) / 255, nuisance, style)
    image = _recolor(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), nuisance, style)
    if style.sensor_noise:
        image = image.filter(ImageFilter.GaussianBlur(nuisance.blur * size / 96))
        noisy = np.asarray(image, np.float32) + rng.normal(0.0, nuisance.noise_sigma, (size, size, 3))
        image = Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8))
    return image


def domain_style(domain: str) -> DomainStyle:
    """The registered style of ``domain``; unknown names are a user error."""
    if domain not in DOMAIN_STYLES:
        raise LossbenchError(
            f"synthetic.domains: unknown domain {domain!r}; choose from {sorted(DOMAIN_STYLES)}")
    return DOMAIN_STYLES[domain]


def identity_name(index: int) -> str:
    """Folder name of identity ``index`` (``id_0000``)."""
    return f"id_{index:04d}"


def domain_counts(images_per_id: int, domains: Sequence[str]) -> dict[str, int]:
    """Images per identity in each domain: an even split, earlier domains take the remainder."""
    base, extra = divmod(images_per_id, len(domains))
    return {domain: base + (k < extra) for k, domain in enumerate(domains)}


def _validate(identities: int, images_per_id: int, image_size: int, domains: Sequence[str], seed: int) -> None:
    """Refuse arguments that cannot make a usable two-view retrieval set."""
    minimums = {"identities": (identities, 2), "images_per_id": (images_per_id, 2), "image_size": (image_size, 16),
                "seed": (seed, 0)}
    for key, (value, minimum) in minimums.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
            raise LossbenchError(f"synthetic.{key} must be an integer >= {minimum} (got {value!r}); set it to "
                                 f"{minimum} or more")
    if not domains:
        raise LossbenchError(f"synthetic.domains is empty; list at least one of {sorted(DOMAIN_STYLES)}")
    if len(set(domains)) != len(domains):
        raise LossbenchError(f"synthetic.domains has duplicates ({list(domains)}); list each domain once")
    for domain in domains:
        domain_style(domain)


def _generated_folders(root: Path) -> list[Path]:
    """The ``id_*`` identity folders under ``root``, sorted."""
    return sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"id_\d+", p.name))


def _clear_generated(root: Path) -> None:
    """Remove the ``id_*`` folders of a previous run (and nothing else)."""
    if root.exists() and not root.is_dir():
        raise LossbenchError(f"synthetic root {root} exists and is not a folder; remove it or pick another path")
    if root.is_dir():
        for folder in _generated_folders(root):
            shutil.rmtree(folder)


def generate_dataset(root: str | Path, *, identities: int = 200, images_per_id: int = 12, image_size: int = 96,
                     domains: Sequence[str] = ("photo", "render"), seed: int = 0,
                     progress: bool = False) -> dict:
    """Write ``root/id_NNNN/<domain>/<nn>.png`` and return a summary of what was written.

    Image ``j`` of an identity goes to ``domains[j % len(domains)]`` and is named by ``j``; its pixels
    depend only on ``(seed, identity, j)``.
    """
    domains = tuple(domains)
    _validate(identities, images_per_id, image_size, domains, seed)
    root = Path(root)
    _clear_generated(root)
    width = max(2, len(str(images_per_id - 1)))
    for identity in tqdm(range(identities), desc="synthesize", unit="identity", disable=not progress):
        traits = identity_traits(seed, identity)
        for image in range(images_per_id):
            domain = domains[image % len(domains)]
            folder = root / identity_name(identity) / domain
            folder.mkdir(parents=True, exist_ok=True)
            picture = render_face(traits, image_nuisance(seed, identity, image), domain, image_size)
            picture.save(folder / f"{image:0{width}d}.png", format="PNG", compress_level=6)
    per_domain = domain_counts(images_per_id, domains)
    return {
        "root": str(root),
        "identities": identities,
        "images": identities * images_per_id,
        "images_per_id": images_per_id,
        "image_size": image_size,
        "seed": seed,
        "images_per_domain": {domain: count * identities for domain, count in per_domain.items()},
    }


def _pixel_vectors(folders: Sequence[Path], domain: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length, mean-centred raw-pixel vectors of every ``domain`` image, and their identity numbers."""
    rows, labels = [], []
    for label, folder in enumerate(folders):
        for path in sorted((folder / domain).glob("*.png")):
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
            rows.append(pixels.reshape(-1).astype(np.float64))
            labels.append(label)
    if not rows:
        raise LossbenchError(f"no {domain!r} images in the id_* folders; generate the dataset with that domain")
    matrix = np.stack(rows)
    matrix -= matrix.mean(axis=1, keepdims=True)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-12
    return matrix, np.array(labels)


def pixel_retrieval_top1(root: str | Path, *, identities: int | None = None, query_domain: str = "photo",
                         gallery_domain: str = "render", size: int = 64) -> float:
    """Difficulty probe: top-1 of raw-pixel cosine retrieval, ``query_domain`` images against ``gallery_domain``.

    Images are resized to ``size`` pixels and each flattened vector is mean-centred before cosine
    similarity; uses the first ``identities`` ``id_*`` folders of ``root`` (all when None).
    """
    folders = _generated_folders(Path(root))[:identities]
    queries, query_labels = _pixel_vectors(folders, query_domain, size)
    gallery, gallery_labels = _pixel_vectors(folders, gallery_domain, size)
    nearest = np.argmax(queries @ gallery.T, axis=1)
    return float(np.mean(gallery_labels[nearest] == query_labels))
