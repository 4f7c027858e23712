"""The traffic world: a simulation of lanes of moving objects, and its renderer.

:class:`TrafficWorld` advances a simple traffic simulation (Poisson arrivals
per lane, car-following so nobody drives through anybody) one frame at a
time, and renders a frame on request with its ground truth: every visible
object's class, box and track id, and how occluded and truncated it is.
Simulation and rendering are separate, so a data-set builder can simulate
every frame but draw only the ones it samples.

What makes it look like a traffic camera rather than a diagram: real
textures from scikit-image's bundled photos (grass, gravel, brick) under
the road, verges and buildings; perspective scale per lane; random paint and
proportions per object; motion blur on fast objects; drop shadows; swaying
trees, drifting cloud shadows and slow light changes that fool background
subtraction; camera shake; sensor noise; and at night, dark bodies behind
headlights.

Everything random comes from one seeded generator, consumed in a fixed
order, so a seed always gives the same video.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np
from skimage import data as skdata

from .presets import Lane, Preset
from .settings import FPS, FRAME_SIZE, SEED
from .sprites import VEHICLES, Look, object_size, random_look, render_sprite

WALK_PHASES = 6


@dataclass
class TruthObject:
    """One object as the camera sees it in one frame."""

    track: int
    cls: str
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels, clipped to the frame
    occluded: float  # share of the box covered by nearer objects
    truncated: float  # share of the object outside the frame

    def to_dict(self) -> dict:
        return {
            "track": self.track,
            "class": self.cls,
            "box": list(self.box),
            "occluded": round(self.occluded, 3),
            "truncated": round(self.truncated, 3),
        }


@dataclass
class Frame:
    """A rendered frame (RGB ``uint8``) and its truth."""

    index: int
    time: float
    image: np.ndarray
    objects: list[TruthObject]


@dataclass
class _Mover:
    track: int
    cls: str
    lane: int
    look: Look
    x: float  # left edge of the sprite, pixels
    speed: float  # pixels per frame, signed
    desired: float
    sprites: list[np.ndarray]  # oriented RGBA (several walking phases for people)
    tight: tuple[int, int, int, int]  # tight box of the alpha inside the sprite
    base_y: int
    phase: float = 0.0
    lights: bool = False

    @property
    def width(self) -> int:
        return self.sprites[0].shape[1]

    @property
    def height(self) -> int:
        return self.sprites[0].shape[0]


@dataclass
class _Tree:
    x: float
    y: float
    size: float
    freq: float
    phase: float
    colour: tuple[int, int, int]


@dataclass
class _Scenery:
    background: np.ndarray  # (H + 2m, W + 2m, 3) uint8, m = shake margin
    margin: int
    trees: list[_Tree] = field(default_factory=list)
    shadow_field: np.ndarray | None = None  # (H, 3W) uint8 light factor
    noise_bank: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


class TrafficWorld:
    """A seeded traffic camera.

    Args:
        preset: the camera (see :mod:`mxn.datasets.world.presets`).
        seed: everything random derives from it.
        size: frame ``(width, height)`` in pixels.
        fps: frames per second.
    """

    def __init__(
        self, preset: Preset, seed: int = SEED, size: tuple[int, int] = FRAME_SIZE, fps: float = FPS
    ) -> None:
        if size[0] < 64 or size[1] < 36:
            raise ValueError(f"frame size must be at least 64x36, got {size}")
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.preset = preset
        self.seed = seed
        self.width, self.height = int(size[0]), int(size[1])
        self.fps = float(fps)
        self.rng = np.random.default_rng(seed)
        self.frame_index = 0
        self.movers: list[_Mover] = []
        self._next_track = 0
        self._scenery = self._build_scenery()

    # -- geometry -----------------------------------------------------------------

    def lane_ppm(self, lane: Lane) -> float:
        """Pixels per metre on a lane: perspective grows linearly below the horizon."""
        scale = self.height / 360.0
        depth = (lane.y - self.preset.horizon) / (1.0 - self.preset.horizon)
        return self.preset.ppm_near * scale * max(depth, 0.05)

    # -- simulation ---------------------------------------------------------------

    def step(self) -> None:
        """Advance the simulation by one frame: move, retire, spawn."""
        for lane_index, lane in enumerate(self.preset.lanes):
            in_lane = sorted(
                (m for m in self.movers if m.lane == lane_index), key=lambda m: -m.x * lane.direction
            )
            for leader, follower in itertools.pairwise(in_lane):
                gap = (
                    (leader.x - follower.x - follower.width)
                    if lane.direction > 0
                    else (follower.x - leader.x - leader.width)
                )
                safe = 0.5 * self.lane_ppm(lane) * 4
                follower.speed = (
                    min(abs(follower.desired), abs(leader.speed)) * lane.direction
                    if gap < safe
                    else follower.desired
                )
        for m in self.movers:
            m.x += m.speed
            m.phase += abs(m.speed) / max(4.0, m.height * 0.35)
        self.movers = [m for m in self.movers if -m.width - 2 <= m.x <= self.width + 2]
        for lane_index, lane in enumerate(self.preset.lanes):
            if self.rng.random() < lane.rate / self.fps:
                self._spawn(lane_index, lane)
        self.frame_index += 1

    def _spawn(self, lane_index: int, lane: Lane) -> None:
        kinds = list(lane.kinds)
        weights = np.array([lane.kinds[k] for k in kinds], dtype=np.float64)
        cls = kinds[int(self.rng.choice(len(kinds), p=weights / weights.sum()))]
        look = random_look(self.rng)
        speed_mps = float(self.rng.uniform(*lane.speed))
        ppm = self.lane_ppm(lane)
        length, _ = object_size(cls, look)
        entry = -length * ppm - 1 if lane.direction > 0 else self.width + 1
        # Keep a gap to the last object that entered this lane.
        for m in self.movers:
            if m.lane == lane_index:
                room = (m.x - 0) if lane.direction > 0 else (self.width - (m.x + m.width))
                if room < m.width * 0.2 + 2 * ppm:
                    return
        speed_px = speed_mps * ppm / self.fps * lane.direction
        sprites = self._sprites(cls, look, ppm, abs(speed_px), lane.direction)
        alpha = sprites[0][..., 3]
        ys, xs = np.nonzero(alpha > 40)
        tight = (
            (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if xs.size else (0, 0, 1, 1)
        )
        self.movers.append(
            _Mover(
                track=self._next_track,
                cls=cls,
                lane=lane_index,
                look=look,
                x=float(entry),
                speed=speed_px,
                desired=speed_px,
                sprites=sprites,
                tight=tight,
                base_y=round(lane.y * self.height),
                phase=float(self.rng.uniform(0, 2 * math.pi)),
                lights=self.preset.night and cls in (*VEHICLES, "motorcyclist"),
            )
        )
        self._next_track += 1

    def _sprites(self, cls: str, look: Look, ppm: float, speed_px: float, direction: int) -> list[np.ndarray]:
        phases = [2 * math.pi * k / WALK_PHASES for k in range(WALK_PHASES)] if cls == "person" else [0.0]
        out = []
        for phase in phases:
            sprite = render_sprite(cls, look, ppm, phase)
            if self.preset.night:
                sprite = _night_sprite(sprite, cls)
            blur = round(speed_px * self.preset.exposure)
            if blur >= 2:
                sprite = _motion_blur(sprite, blur)
            if direction < 0:
                sprite = sprite[:, ::-1].copy()
            out.append(sprite)
        return out

    # -- rendering ----------------------------------------------------------------

    def render(self) -> Frame:
        """Draw the current state, with its truth."""
        p, sc = self.preset, self._scenery
        t = self.frame_index / self.fps
        dx = dy = 0
        if p.shake_px > 0:
            dx, dy = (
                int(v) for v in np.clip(self.rng.normal(0, p.shake_px, 2).round(), -sc.margin, sc.margin)
            )
        frame = sc.background[
            sc.margin + dy : sc.margin + dy + self.height, sc.margin + dx : sc.margin + dx + self.width
        ].copy()
        self._draw_trees(frame, t, dx, dy)
        order = sorted(self.movers, key=lambda m: m.base_y)
        placed: list[tuple[_Mover, tuple[int, int, int, int], float]] = []
        for m in order:
            sprite = m.sprites[int(m.phase / (2 * math.pi) * WALK_PHASES) % len(m.sprites)]
            x0 = round(m.x) - dx
            y0 = m.base_y - m.height - dy
            if not p.night:
                _drop_shadow(frame, x0, m.base_y - dy, m.width)
            _blend(frame, sprite, x0, y0)
            if m.lights:
                _headlights(frame, m, x0, y0)
            tx0, ty0, tx1, ty1 = m.tight
            full = (x0 + tx0, y0 + ty0, x0 + tx1, y0 + ty1)
            placed.append((m, full, float((tx1 - tx0) * (ty1 - ty0))))
        self._light(frame, t)
        self._noise(frame)
        objects = self._truth(placed)
        return Frame(index=self.frame_index, time=t, image=frame, objects=objects)

    def frames(
        self, seconds: float | None = None, count: int | None = None, every: int = 1
    ) -> Iterator[Frame]:
        """Simulate ``seconds`` (or ``count`` frames) and yield every ``every``-th rendered frame."""
        total = count if count is not None else round((seconds or 0) * self.fps)
        for _ in range(total):
            if self.frame_index % every == 0:
                yield self.render()
            self.step()

    def _truth(self, placed) -> list[TruthObject]:
        objects = []
        for k, (m, (x0, y0, x1, y1), area) in enumerate(placed):
            cx0, cy0 = max(0, x0), max(0, y0)
            cx1, cy1 = min(self.width, x1), min(self.height, y1)
            if cx1 - cx0 < 2 or cy1 - cy0 < 2:
                continue
            visible_area = float((cx1 - cx0) * (cy1 - cy0))
            covered = 0.0
            for _, (ox0, oy0, ox1, oy1), _ in placed[k + 1 :]:  # drawn later = nearer
                iw = min(cx1, ox1) - max(cx0, ox0)
                ih = min(cy1, oy1) - max(cy0, oy0)
                if iw > 0 and ih > 0:
                    covered += iw * ih
            objects.append(
                TruthObject(
                    track=m.track,
                    cls=m.cls,
                    box=(cx0, cy0, cx1, cy1),
                    occluded=min(1.0, covered / visible_area),
                    truncated=1.0 - visible_area / max(area, 1.0),
                )
            )
        return objects

    # -- scenery ------------------------------------------------------------------

    def _build_scenery(self) -> _Scenery:
        p, rng = self.preset, self.rng
        m = max(2, math.ceil(p.shake_px * 3))
        W, H = self.width + 2 * m, self.height + 2 * m
        horizon = int(p.horizon * self.height) + m
        bg = np.zeros((H, W, 3), np.float32)
        # Sky: a vertical gradient.
        top, low = np.array([110, 150, 205]), np.array([190, 210, 230])
        ramp = np.linspace(0, 1, horizon)[:, None, None]
        bg[:horizon] = top * (1 - ramp) + low * ramp
        if p.buildings:
            brick = _texture(skdata.brick(), W, horizon, rng)
            x = 0
            while x < W:
                bw = int(rng.uniform(0.08, 0.2) * W)
                bh = int(rng.uniform(0.45, 1.0) * horizon)
                tint = rng.uniform(0.5, 1.0, 3) * np.array([1.0, 0.8, 0.7])
                bg[horizon - bh : horizon, x : x + bw] = (
                    brick[horizon - bh : horizon, x : x + bw, None] * tint
                )
                x += bw + int(rng.uniform(0, 0.03) * W)
        # Ground: grass verges, a gravel-textured road with lane markings, pavements.
        grass = _texture(skdata.grass(), W, H, rng)[..., None] * np.array([0.45, 0.75, 0.35])
        bg[horizon:] = grass[horizon:]
        lanes = sorted(p.lanes, key=lambda lane: lane.y)
        gravel = cv2.resize(skdata.gravel(), (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32)
        asphalt = 95 + (_texture(gravel, W, H, rng) - float(gravel.mean())) * 0.3
        road = asphalt[..., None] * np.array([1.0, 1.0, 1.04])
        ys = [int(lane.y * self.height) + m for lane in lanes]
        top_y = max(horizon, ys[0] - int(0.08 * self.height))
        bg[top_y : min(H, ys[-1] + int(0.03 * self.height))] = road[
            top_y : min(H, ys[-1] + int(0.03 * self.height))
        ]
        for lane, y in zip(lanes, ys, strict=True):
            if set(lane.kinds) <= {"person", "cyclist"}:  # a pavement
                y0 = max(top_y, y - int(0.05 * self.height))
                bg[y0 : y + 2] = bg[y0 : y + 2] * 0.6 + np.array([175, 170, 160]) * 0.4
        for a, b in itertools.pairwise(ys):
            mid = (a + b) // 2 + 1
            for x in range(0, W, 40):
                cv2.line(bg, (x, mid), (x + 20, mid), (220, 220, 210), 1)
        if p.night:
            bg *= 0.22
            for x in range(int(rng.uniform(0, 120)), W, 160):  # street lamps' pools of light
                cv2.ellipse(bg, (x, ys[-1]), (60, 18), 0, 0, 360, (60, 55, 35), -1)
            bg = cv2.GaussianBlur(bg, (0, 0), 3)
        background = np.clip(bg, 0, 255).astype(np.uint8)
        trees = [
            _Tree(
                x=float(rng.uniform(0, self.width)),
                y=float(horizon - m + rng.uniform(-0.02, 0.06) * self.height),
                size=float(rng.uniform(0.05, 0.09) * self.height),
                freq=float(rng.uniform(0.3, 0.8)),
                phase=float(rng.uniform(0, 2 * math.pi)),
                colour=tuple(int(v) for v in rng.uniform([20, 70, 20], [60, 120, 50])),  # type: ignore[misc]
            )
            for _ in range(p.trees)
        ]
        shadow = None
        if p.cloud_shadows:
            small = rng.random((max(2, self.height // 40), max(2, 3 * self.width // 40)))
            field_ = cv2.resize(
                small.astype(np.float32), (3 * self.width, self.height), interpolation=cv2.INTER_CUBIC
            )
            field_ = cv2.GaussianBlur(field_, (0, 0), 25)
            field_ = (field_ - field_.min()) / max(1e-6, float(field_.max() - field_.min()))
            shadow = (255 * (1.0 - 0.35 * np.clip(field_ * 1.6 - 0.6, 0, 1))).astype(np.uint8)
        bank = []
        for _ in range(6):
            noise = rng.normal(0, p.noise, (self.height, self.width, 3))
            bank.append((np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)))
        return _Scenery(background, m, trees, shadow, bank)

    def _draw_trees(self, frame: np.ndarray, t: float, dx: int, dy: int) -> None:
        for tree in self._scenery.trees:
            sway = tree.size * 0.25 * math.sin(2 * math.pi * tree.freq * t + tree.phase)
            x, y = int(tree.x - dx), int(tree.y - dy)
            s = tree.size
            trunk = (18, 13, 9) if self.preset.night else (70, 50, 35)
            cv2.line(frame, (x, y), (x, int(y - s)), trunk, max(1, int(s * 0.15)))
            for k, (ox, oy, r) in enumerate(((0, -1.3, 0.8), (-0.5, -1.0, 0.55), (0.5, -1.0, 0.55))):
                cx = int(x + ox * s + sway * (1 + 0.3 * k))
                shade = (0.85 + 0.1 * k) * (0.25 if self.preset.night else 1.0)
                colour = tuple(int(c * shade) for c in tree.colour)
                cv2.circle(frame, (cx, int(y + oy * s)), int(r * s), colour, -1, cv2.LINE_AA)

    def _light(self, frame: np.ndarray, t: float) -> None:
        """Cloud shadows drifting across, and a slow change of overall light."""
        sc = self._scenery
        gain = 1.0 + (0.0 if self.preset.night else 0.08 * math.sin(2 * math.pi * t / 90.0 + self.seed))
        if sc.shadow_field is not None:
            offset = int(t * 6) % (2 * self.width)
            factor = sc.shadow_field[:, offset : offset + self.width]
            cv2.multiply(frame, cv2.merge([factor] * 3), frame, scale=gain / 255.0)
        elif gain != 1.0:
            cv2.convertScaleAbs(frame, frame, alpha=gain)

    def _noise(self, frame: np.ndarray) -> None:
        pos, neg = self._scenery.noise_bank[int(self.rng.integers(len(self._scenery.noise_bank)))]
        cv2.add(frame, pos, frame)
        cv2.subtract(frame, neg, frame)


def _texture(gray: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A real photo texture tiled to ``width x height`` from a random offset, as float32."""
    reps = (height // gray.shape[0] + 2, width // gray.shape[1] + 2)
    tiled = np.tile(gray, reps)
    oy, ox = int(rng.integers(gray.shape[0])), int(rng.integers(gray.shape[1]))
    return tiled[oy : oy + height, ox : ox + width].astype(np.float32)


def _blend(frame: np.ndarray, sprite: np.ndarray, x0: int, y0: int) -> None:
    """Alpha-blend an RGBA sprite onto ``frame`` at ``(x0, y0)``, clipped to the frame."""
    h, w = sprite.shape[:2]
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x0 + w), min(frame.shape[0], y0 + h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    part = sprite[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    alpha = part[..., 3:4].astype(np.float32) / 255.0
    region = frame[fy0:fy1, fx0:fx1]
    region[:] = (region * (1.0 - alpha) + part[..., :3] * alpha).astype(np.uint8)


def _drop_shadow(frame: np.ndarray, x0: int, base_y: int, width: int) -> None:
    cx, half = x0 + width // 2, max(2, width // 2)
    h = max(2, width // 16)
    y0, y1 = max(0, base_y - h), min(frame.shape[0], base_y + h)
    xa, xb = max(0, cx - half), min(frame.shape[1], cx + half)
    if xb > xa and y1 > y0:
        frame[y0:y1, xa:xb] = (frame[y0:y1, xa:xb] * 0.7).astype(np.uint8)


def _motion_blur(sprite: np.ndarray, length: int) -> np.ndarray:
    """Horizontal motion blur of an RGBA sprite (premultiplied, so edges fade right)."""
    pad = np.pad(sprite, ((0, 0), (length, length), (0, 0)))
    alpha = pad[..., 3:4].astype(np.float32) / 255.0
    premul = np.dstack([pad[..., :3].astype(np.float32) * alpha, alpha[..., 0] * 255.0])
    kernel = np.full((1, length), 1.0 / length, np.float32)
    blurred = cv2.filter2D(premul, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    a = np.clip(blurred[..., 3:4] / 255.0, 1e-4, 1.0)
    rgb = np.clip(blurred[..., :3] / a, 0, 255)
    out = np.dstack([rgb, blurred[..., 3]]).astype(np.uint8)
    cols = np.nonzero(out[..., 3].max(axis=0) > 0)[0]
    return out[:, cols.min() : cols.max() + 1] if cols.size else out


def _night_sprite(sprite: np.ndarray, cls: str) -> np.ndarray:
    out = sprite.copy()
    out[..., :3] = (out[..., :3] * 0.3).astype(np.uint8)
    return out


def _headlights(frame: np.ndarray, m: _Mover, x0: int, y0: int) -> None:
    """A bright headlight at the front, a red tail light at the back, and a glow ahead."""
    h, w = m.height, m.width
    ahead = 1 if m.speed > 0 else -1
    front_x = x0 + w - 2 if ahead > 0 else x0 + 1
    back_x = x0 + 1 if ahead > 0 else x0 + w - 2
    y = y0 + int(h * 0.62)
    r = max(1, h // 10)
    cx, cy, ax, ay = front_x + ahead * 3 * r, y + r, 6 * r, 2 * r
    xa, xb = max(0, cx - ax), min(frame.shape[1], cx + ax + 1)
    ya, yb = max(0, cy - ay), min(frame.shape[0], cy + ay + 1)
    if xb > xa and yb > ya:  # the glow, added on its own small region
        glow = np.zeros((yb - ya, xb - xa, 3), np.uint8)
        cv2.ellipse(glow, (cx - xa, cy - ya), (ax, ay), 0, 0, 360, (70, 65, 40), -1, cv2.LINE_AA)
        frame[ya:yb, xa:xb] = cv2.add(frame[ya:yb, xa:xb], glow)
    cv2.circle(frame, (front_x, y), r, (255, 250, 210), -1, cv2.LINE_AA)
    cv2.circle(frame, (back_x, y), max(1, r - 1), (220, 30, 30), -1, cv2.LINE_AA)
