"""Composing a movie from the cast: shots cut and cast by a seed, frames rendered, video and truth written.

:func:`plan_shots` cuts the movie into shots and casts each one;
:func:`placements` says who is where in a frame, and both the pixels
(:func:`render_frame`) and the truth (:meth:`Movie.truth`) come from it, so
they cannot drift apart. :func:`write_movie` writes ``NAME.mp4`` and the
truth file beside it, in the layout of :mod:`mxn.facerec.truth`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mxn.facerec.detection import as_rgb
from mxn.facerec.truth import Face, frame_line, header_line, truth_path

from .cast import Person, load_cast
from .paste import Source, paste, paste_transform, truth_box
from .settings import movie_presets

#: scikit-image photos (no faces in them) that, blurred, make the backgrounds.
BACKGROUNDS = ("coffee", "rocket", "chelsea", "hubble_deep_field", "coins")

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


@functools.lru_cache(maxsize=16)
def background(name: str, size: tuple[int, int]) -> np.ndarray:
    """A scikit-image photo resized to ``size`` (W, H) and blurred past recognition: a backdrop with
    colour and texture but no face in it."""
    from skimage import data

    image = as_rgb(np.asarray(getattr(data, name)()))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    sigma = max(size) / 40
    return cv2.GaussianBlur(image, (0, 0), sigma)


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
        """The truth file's header (:func:`~mxn.facerec.truth.header_line`): settings, cast and cuts."""
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
    """A movie of ``seconds`` at ``fps`` and ``size`` (W, H), of ``cast`` (default :data:`.cast.CAST`).

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


# -- writing ------------------------------------------------------------------------------------------------


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
            out.write(header_line(movie.header))
            for index, image, faces in movie:
                writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                out.write(frame_line(index, index / movie.fps, faces))
        writer.release()
        os.replace(video_tmp, video)
        os.replace(truth_tmp, truth)
    except BaseException:
        writer.release()
        for leftover in (video_tmp, truth_tmp):
            leftover.unlink(missing_ok=True)
        raise
    return video, truth
