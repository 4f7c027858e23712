"""Procedural side-view sprites of the world's seven object classes.

Each class is drawn from a few primitives in metres (origin at the object's
rear bottom, y up), scaled to pixels by the lane's perspective, with
per-object random proportions and colours. The confusable pairs differ the
way they do in real footage: a van is a taller, boxier car; a bus and a truck
are both long and tall, the bus with a row of windows, the truck with a cab
and a blank cargo box; a cyclist and a motorcyclist both sit on two wheels,
the motorcyclist on a heavier, filled machine with a helmet.

A sprite is an RGBA ``uint8`` patch facing right; the caller flips it for
objects moving left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

CLASSES: tuple[str, ...] = ("car", "van", "truck", "bus", "person", "cyclist", "motorcyclist")
VEHICLES = ("car", "van", "truck", "bus")
RIDERS = ("cyclist", "motorcyclist")

#: Typical (length, height) in metres, before per-object jitter.
SIZES: dict[str, tuple[float, float]] = {
    "car": (4.4, 1.5),
    "van": (5.0, 2.1),
    "truck": (8.0, 3.3),
    "bus": (11.0, 3.1),
    "person": (0.6, 1.75),
    "cyclist": (1.8, 1.75),
    "motorcyclist": (2.1, 1.6),
}

#: Usual vehicle paints (RGB), drawn with extra random variation.
PAINTS = np.array(
    [
        (235, 235, 235), (190, 192, 196), (40, 40, 45), (160, 30, 35), (30, 60, 150),
        (40, 110, 60), (220, 180, 40), (120, 120, 125), (200, 90, 30), (90, 50, 110),
    ],
    dtype=np.float64,
)  # fmt: skip
GLASS = (60, 75, 90)
TYRE = (25, 25, 25)


@dataclass
class Look:
    """The random appearance of one object, fixed at spawn."""

    paint: tuple[int, int, int]
    second: tuple[int, int, int]
    skin: tuple[int, int, int]
    stretch: float
    lift: float
    variant: int


def random_look(rng: np.random.Generator) -> Look:
    def colour(base: np.ndarray | None = None) -> tuple[int, int, int]:
        c = base if base is not None else rng.uniform(20, 235, 3)
        c = np.clip(c + rng.normal(0, 14, 3), 0, 255)
        return tuple(int(v) for v in c)  # type: ignore[return-value]

    skin = rng.choice([(230, 190, 160), (190, 140, 100), (120, 80, 55), (250, 215, 185)])
    return Look(
        paint=colour(PAINTS[rng.integers(len(PAINTS))]),
        second=colour(),
        skin=tuple(int(v) for v in skin),  # type: ignore[arg-type]
        stretch=float(rng.uniform(0.88, 1.12)),
        lift=float(rng.uniform(0.9, 1.1)),
        variant=int(rng.integers(0, 4)),
    )


class Canvas:
    """Draws in metres onto an RGBA patch of ``ppm`` pixels per metre."""

    def __init__(self, length: float, height: float, ppm: float, margin: float = 0.1) -> None:
        self.ppm = ppm
        self.margin = margin
        self.w = max(2, int(np.ceil((length + 2 * margin) * ppm)))
        self.h = max(2, int(np.ceil((height + 2 * margin) * ppm)))
        self.rgb = np.zeros((self.h, self.w, 3), np.uint8)
        self.alpha = np.zeros((self.h, self.w), np.uint8)
        self.shift = 4  # sub-pixel bits for anti-aliased drawing

    def _pt(self, x: float, y: float) -> tuple[int, int]:
        s = 1 << self.shift
        px = (x + self.margin) * self.ppm
        py = self.h - (y + self.margin) * self.ppm
        return round(px * s), round(py * s)

    def poly(self, points: list[tuple[float, float]], colour) -> None:
        pts = np.array([self._pt(x, y) for x, y in points], np.int32)
        cv2.fillPoly(self.rgb, [pts], colour, cv2.LINE_AA, self.shift)
        cv2.fillPoly(self.alpha, [pts], 255, cv2.LINE_AA, self.shift)

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], colour)

    def circle(self, x: float, y: float, r: float, colour, thickness: float = 0.0) -> None:
        centre = self._pt(x, y)
        radius = round(r * self.ppm * (1 << self.shift))
        t = -1 if thickness <= 0 else max(1, round(thickness * self.ppm))
        cv2.circle(self.rgb, centre, radius, colour, t, cv2.LINE_AA, self.shift)
        cv2.circle(self.alpha, centre, radius, 255, t, cv2.LINE_AA, self.shift)

    def line(self, x0: float, y0: float, x1: float, y1: float, colour, width: float) -> None:
        t = max(1, round(width * self.ppm))
        cv2.line(self.rgb, self._pt(x0, y0), self._pt(x1, y1), colour, t, cv2.LINE_AA, self.shift)
        cv2.line(self.alpha, self._pt(x0, y0), self._pt(x1, y1), 255, t, cv2.LINE_AA, self.shift)

    def rgba(self) -> np.ndarray:
        return np.dstack([self.rgb, self.alpha])


def _wheel(c: Canvas, x: float, r: float) -> None:
    c.circle(x, r, r, TYRE)
    c.circle(x, r, r * 0.45, (150, 150, 150))


def _car(c: Canvas, L: float, H: float, k: Look) -> None:
    c.poly([(0, 0.3), (L, 0.3), (L, 0.75), (0.9 * L, 0.85 * H * 0.62), (0, 0.85 * H * 0.6)], k.paint)
    c.poly([(0.22 * L, 0.55 * H), (0.78 * L, 0.55 * H), (0.68 * L, H), (0.32 * L, H)], k.paint)
    c.poly([(0.27 * L, 0.6 * H), (0.73 * L, 0.6 * H), (0.65 * L, 0.93 * H), (0.35 * L, 0.93 * H)], GLASS)
    c.line(0.5 * L, 0.6 * H, 0.5 * L, 0.93 * H, k.paint, 0.06)
    _wheel(c, 0.2 * L, 0.32)
    _wheel(c, 0.8 * L, 0.32)


def _van(c: Canvas, L: float, H: float, k: Look) -> None:
    c.poly([(0, 0.35), (L, 0.35), (L, 0.55 * H), (0.85 * L, H), (0, H)], k.paint)
    c.poly([(0.72 * L, 0.6 * H), (0.97 * L, 0.6 * H), (0.86 * L, 0.92 * H), (0.72 * L, 0.92 * H)], GLASS)
    if k.variant % 2:
        c.rect(0.08 * L, 0.6 * H, 0.65 * L, 0.88 * H, GLASS)
    c.line(0.7 * L, 0.4, 0.7 * L, 0.95 * H, tuple(int(v * 0.7) for v in k.paint), 0.04)
    _wheel(c, 0.18 * L, 0.34)
    _wheel(c, 0.82 * L, 0.34)


def _truck(c: Canvas, L: float, H: float, k: Look) -> None:
    cab = 0.24 * L
    c.rect(0, 0.5, L - cab - 0.15, H, k.second)  # cargo box, no windows
    c.line(0, 0.55, L - cab, 0.55, (60, 60, 60), 0.15)
    c.poly(
        [(L - cab, 0.45), (L, 0.45), (L, 0.5 * H), (L - 0.3 * cab, 0.78 * H), (L - cab, 0.78 * H)], k.paint
    )
    window = [(L - 0.85 * cab, 0.5 * H), (L - 0.05 * cab, 0.5 * H), (L - 0.35 * cab, 0.72 * H)]
    c.poly([*window, (L - 0.85 * cab, 0.72 * H)], GLASS)
    for x in (0.12 * L, 0.27 * L, L - 0.55 * cab):
        _wheel(c, x, 0.45)


def _bus(c: Canvas, L: float, H: float, k: Look) -> None:
    c.rect(0, 0.35, L, H, k.paint)
    n = 5 + k.variant
    gap = L * 0.9 / n
    for i in range(n):
        x0 = 0.04 * L + i * gap
        c.rect(x0, 0.55 * H, x0 + 0.8 * gap, 0.86 * H, GLASS)
    c.rect(0.86 * L, 0.4, 0.93 * L, 0.86 * H, GLASS)  # door
    c.rect(0, 0.4, L, 0.5, k.second)  # stripe
    _wheel(c, 0.16 * L, 0.48)
    _wheel(c, 0.8 * L, 0.48)


def _figure(c: Canvas, x: float, base: float, h: float, k: Look, phase: float, seated: bool) -> None:
    """A person standing/walking at ``x`` (or seated, leaning forward)."""
    head_r = 0.065 * h
    if seated:
        hip = (x, base + 0.42 * h)
        shoulder = (x + 0.22 * h, base + 0.78 * h)
        c.line(*hip, x + 0.28 * h, base + 0.22 * h, k.second, 0.07 * h)  # thigh to pedal
        c.line(*hip, *shoulder, k.paint, 0.14 * h)
        c.line(*shoulder, x + 0.42 * h, base + 0.6 * h, k.paint, 0.05 * h)  # arm to handlebar
        c.circle(shoulder[0] + 0.06 * h, shoulder[1] + 0.11 * h, head_r, k.skin)
        return
    swing = 0.18 * h * np.sin(phase)
    hip = (x, base + 0.5 * h)
    c.line(*hip, x + swing, base, k.second, 0.09 * h)
    c.line(*hip, x - swing, base, k.second, 0.09 * h)
    c.line(x, base + 0.5 * h, x, base + 0.82 * h, k.paint, 0.2 * h)
    c.line(x, base + 0.8 * h, x - swing * 0.8, base + 0.5 * h, k.paint, 0.06 * h)
    c.circle(x, base + 0.9 * h, head_r, k.skin)


def _person(c: Canvas, L: float, H: float, k: Look, phase: float = 0.0) -> None:
    _figure(c, L / 2, 0.0, H, k, phase, seated=False)


def _cyclist(c: Canvas, L: float, H: float, k: Look) -> None:
    r = 0.34
    grey = (70, 70, 70) if k.variant % 2 else tuple(int(v) for v in k.second)
    c.circle(r, r, r, (30, 30, 30), thickness=0.05)
    c.circle(L - r, r, r, (30, 30, 30), thickness=0.05)
    c.line(r, r, 0.45 * L, 0.75, grey, 0.05)  # frame
    c.line(0.45 * L, 0.75, L - r - 0.1, 0.8, grey, 0.05)
    c.line(0.45 * L, 0.75, 0.55 * L, r, grey, 0.05)
    c.line(L - r, r, L - r - 0.1, 0.95, grey, 0.05)
    _figure(c, 0.42 * L, 0.32, H - 0.32, k, 0.0, seated=True)


def _motorcyclist(c: Canvas, L: float, H: float, k: Look) -> None:
    r = 0.32
    _wheel(c, r, r)
    _wheel(c, L - r, r)
    c.poly([(0.3 * L, 0.45), (0.8 * L, 0.45), (0.85 * L, 0.75), (0.55 * L, 0.85), (0.25 * L, 0.75)], k.second)
    c.rect(0.4 * L, 0.3, 0.6 * L, 0.5, (60, 60, 60))  # engine
    _figure(c, 0.45 * L, 0.55, H - 0.55, k, 0.0, seated=True)
    c.circle(0.45 * L + 0.22 * (H - 0.55) + 0.06, H - 0.12, 0.17, k.second)  # helmet


DRAWERS: dict[str, Callable[..., None]] = {
    "car": _car,
    "van": _van,
    "truck": _truck,
    "bus": _bus,
    "person": _person,
    "cyclist": _cyclist,
    "motorcyclist": _motorcyclist,
}


def object_size(cls: str, look: Look) -> tuple[float, float]:
    """Length and height in metres of one object."""
    length, height = SIZES[cls]
    return length * look.stretch, height * look.lift


def render_sprite(cls: str, look: Look, ppm: float, phase: float = 0.0) -> np.ndarray:
    """The object drawn facing right at ``ppm`` pixels per metre, as RGBA."""
    length, height = object_size(cls, look)
    canvas = Canvas(length, height, ppm)
    if cls == "person":
        _person(canvas, length, height, look, phase)
    else:
        DRAWERS[cls](canvas, length, height, look)
    return canvas.rgba()
