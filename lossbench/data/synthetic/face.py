"""Drawing the person: body, ears, head, hair, beard, marks, eyes, brows, nose, mouth, glasses and occlusion on
a transparent layer, upright and centred (pose, background and lighting are applied afterwards).

Every option of a trait or nuisance is a drawer in a registry (:data:`HAIR_STYLES`, :data:`NOSE_STYLES`,
:data:`BEARD_STYLES`, :data:`GLASSES_STYLES`, :data:`EYE_SHAPES`, :data:`OCCLUSIONS`); the samplers draw the
option names from these registries (by the ``*_WEIGHTS`` where given).

Geometry convention of the drawing helpers: a point ``(x, y)`` is in face units — ``x`` in face
half-widths and ``y`` in face half-heights from the face centre; lengths (radii, widths) are in
face half-widths so that circles stay round.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from lossbench.data.synthetic.common import Color, Point, to_color

if TYPE_CHECKING:
    from lossbench.data.synthetic.nuisance import Nuisance
    from lossbench.data.synthetic.render import DomainStyle
    from lossbench.data.synthetic.traits import FaceTraits

EYE_SHAPES = {"round": 0.8, "almond": 0.52, "narrow": 0.34}  # eye height / eye width


def _shade(color: Sequence[int], factor: float) -> Color:
    return to_color(np.array(color[:3], dtype=float) * factor)


class _Pen:
    """Draws in face units on the face layer; adds dark outlines when the domain asks for them."""

    def __init__(
        self, layer: Image.Image, center: Point, half_width: float, half_height: float, outline_px: int
    ) -> None:
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
        self.draw.line(
            [self.xy(x, y) for x, y in points], fill=fill, width=max(1, round(width * self.fw)), joint="curve"
        )

    def rect(
        self, x0: float, y0: float, x1: float, y1: float, fill: Color, radius: float = 0.0, outlined: bool = True
    ) -> None:
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
        pen.ellipse(
            face.hair_x + 1.05 * math.cos(angle), -0.3 + 0.85 * math.sin(angle), 0.3, 0.3, face.traits.hair_color
        )


def _hair_spikes(pen: _Pen, face: _Face) -> None:
    x = face.hair_x
    for k in np.linspace(-0.85, 0.85, 7):
        pen.polygon(
            [(x + k - 0.2, -0.8), (x + k * 1.2, -1.35 + 0.25 * abs(k)), (x + k + 0.2, -0.8)], face.traits.hair_color
        )


def _fringe_arc(face: _Face) -> list[Point]:
    """Upper half-ellipse from the crown down to the identity's hairline."""
    line = face.traits.hairline
    return [
        (face.hair_x + 1.04 * face.squash * math.cos(a), line + (1.08 + line) * math.sin(a))
        for a in np.linspace(math.pi, 2 * math.pi, 15)
    ]


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
        pen.ellipse(ix + iris * 0.3, iy - iris * 0.3 / t.face_aspect, iris * 0.14, iris * 0.14, (255, 255, 255), False)


def _draw_brows(pen: _Pen, face: _Face) -> None:
    t, n = face.traits, face.nuisance
    color = _shade(t.hair_color, 0.8) if t.hair_style != "bald" else _shade(t.skin, 0.45)
    for side, (x, y) in zip((-1, 1), face.eye_centers()):
        width = t.eye_size * 1.25 * face.far_side(side)
        base = y - t.eye_size * 1.1 - n.brow_raise
        points = [
            (x - side * width * 0.9, base),
            (x, base - t.brow_arch - 0.02),
            (x + side * width, base + t.brow_tilt),
        ]
        pen.line(points, t.brow_thickness, color)


def _nose_line(pen: _Pen, face: _Face) -> None:
    t, x = face.traits, face.nose_x
    bottom = face.nose_bottom
    pen.line(
        [(x, t.eye_y + 0.08), (x + face.nuisance.yaw * 0.1, bottom), (x - t.nose_width, bottom - 0.02)],
        0.045,
        _shade(t.skin, 0.7),
    )


def _nose_triangle(pen: _Pen, face: _Face) -> None:
    t, x = face.traits, face.nose_x
    pen.polygon(
        [(x, t.eye_y + 0.08), (x - t.nose_width, face.nose_bottom), (x + t.nose_width, face.nose_bottom)],
        _shade(t.skin, 0.88),
    )


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
    pen.polygon([(x * 0.78 + face.offset * 0.05, start + (y - start) * 0.8) for x, y in lower], face.traits.skin, False)


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
        pen.line([(x - dx, y - dy), (x + dx, y + dy)], 0.035, to_color(np.array(t.skin) * [0.8, 0.55, 0.55]))


FrameDrawer = Callable[[_Pen, Point, Point, Color], None]
FRAME_WIDTH = 0.05


def _frame_round(pen: _Pen, center: Point, radius: Point, color: Color) -> None:
    (x, y), (rx, ry) = center, radius
    pen.line(
        [(x + rx * math.cos(a), y + ry * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 25)], FRAME_WIDTH, color
    )


def _frame_square(pen: _Pen, center: Point, radius: Point, color: Color) -> None:
    (x, y), (rx, ry) = center, radius
    pen.line(
        [(x - rx, y - ry), (x + rx, y - ry), (x + rx, y + ry), (x - rx, y + ry), (x - rx, y - ry)], FRAME_WIDTH, color
    )


def _frame_half_rim(pen: _Pen, center: Point, radius: Point, color: Color) -> None:
    (x, y), (rx, ry) = center, radius
    pen.line([(x - rx, y - ry), (x + rx, y - ry)], FRAME_WIDTH * 2.2, color)
    pen.line(
        [(x - rx, y - ry), (x - rx * 0.8, y + ry), (x + rx * 0.8, y + ry), (x + rx, y - ry)], FRAME_WIDTH * 0.6, color
    )


GLASSES_STYLES: dict[str, FrameDrawer | None] = {
    "none": None,
    "round": _frame_round,
    "square": _frame_square,
    "half_rim": _frame_half_rim,
}
GLASSES_WEIGHTS = {"none": 3.0, "round": 1.0, "square": 1.0, "half_rim": 1.0}


def _draw_glasses(pen: _Pen, face: _Face) -> None:
    """Two frames of the identity's style and colour, a bridge and the arms towards the ears."""
    t = face.traits
    frame = GLASSES_STYLES[t.glasses]
    if frame is None:
        return
    grow = face.style.eye_scale**0.5
    inner_edges = []
    for side, (x, y) in zip((-1, 1), face.eye_centers()):
        rx = t.eye_size * 1.45 * grow * face.far_side(side)
        frame(pen, (x, y), (rx, t.eye_size * 1.05 * grow / t.face_aspect), t.glasses_color)
        pen.line([(x + side * rx, y), (side * face.squash + face.offset * 0.2, y - 0.02)], FRAME_WIDTH, t.glasses_color)
        inner_edges.append((x - side * rx, y))
    pen.line([inner_edges[0], (face.offset, inner_edges[0][1] - 0.05), inner_edges[1]], FRAME_WIDTH, t.glasses_color)


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
    pen.rect(
        x - 0.3 * size, y, x + 0.3 * size, y + 0.55 * size * face.traits.face_aspect, n.occlusion_color, radius=0.08
    )


def _occlude_hat(pen: _Pen, face: _Face) -> None:
    """A hat hiding the hair."""
    n = face.nuisance
    line = face.traits.hairline + 0.15 * n.occlusion_size - 0.1
    crown = [(1.15 * math.cos(a), line + 0.75 * math.sin(a)) for a in np.linspace(math.pi, 2 * math.pi, 15)]
    pen.polygon(crown, n.occlusion_color)
    pen.rect(-1.35, line - 0.05, 1.35, line + 0.12, n.occlusion_color, radius=0.05)


OCCLUSIONS: dict[str, Drawer] = {
    "none": _nothing,
    "bar": _occlude_bar,
    "hand": _occlude_hand,
    "object": _occlude_object,
    "hat": _occlude_hat,
}
OCCLUSION_WEIGHTS = {"none": 7.0, "bar": 1.0, "hand": 1.0, "object": 1.0, "hat": 1.0}


def _draw_occlusion(pen: _Pen, face: _Face) -> None:
    OCCLUSIONS[face.nuisance.occlusion](pen, face)


DRAWING_ORDER: tuple[Drawer, ...] = (
    _draw_hair_back,
    _draw_body,
    _draw_ears,
    _draw_head,
    _draw_beard,
    _draw_marks,
    _draw_eyes,
    _draw_brows,
    _draw_nose,
    _draw_mouth,
    _draw_moustache,
    _draw_hair_front,
    _draw_glasses,
    _draw_occlusion,
)


def draw_face_layer(traits: FaceTraits, nuisance: Nuisance, style: DomainStyle, canvas: int) -> Image.Image:
    """The person on a transparent layer, upright and centred (pose is applied afterwards)."""
    layer = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    half_width = traits.face_width * canvas
    pen = _Pen(
        layer, (canvas / 2, canvas / 2), half_width, half_width * traits.face_aspect, round(style.outline * canvas)
    )
    face = _Face(traits, nuisance, style, offset=0.3 * nuisance.yaw, squash=1 - 0.12 * abs(nuisance.yaw))
    for step in DRAWING_ORDER:
        step(pen, face)
    return layer
