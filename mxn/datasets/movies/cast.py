"""The cast: real people who exist offline, each with face images for the movie and for the gallery.

:func:`load_cast` finds every person's faces once per process; :func:`write_gallery`
writes the gallery the oracle reads, from images the movie never shows verbatim.
Who the cast is and where each face comes from is in :mod:`mxn.datasets.movies`
and docs/DATA.md.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mxn.datasets import sample_faces as sample_data
from mxn.facerec.detection import FaceDetector, HogDetector

from .paste import Source, find_face, found_when_small

#: The cast members :func:`load_cast` knows, in a fixed order.
CAST = ("carphone_man", "roxanne", "bernard", "astronaut", "messi", "lfw_1", "lfw_6")


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


# -- the gallery --------------------------------------------------------------------------------------------


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
