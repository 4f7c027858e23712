"""The oracle: who a face is, when no MXN exit is sure (docs/ARCHITECTURE.md section 6, Algorithm 3's ``O``).

An oracle is any callable from one aligned face crop to a name
(:class:`Oracle`): the crop is what :func:`mxn.facerec.detection.aligned_crops`
makes, ``(112, 112, 3)`` ``uint8`` RGB with dlib's alignment and 0.25
padding, the same input the face MXN gets. The paper also used the MXN's own
last exit as oracle; anything with that signature plugs in.

The default, :class:`GalleryOracle`, embeds the crop with dlib's pretrained
128-D ResNet (:class:`FaceEmbedder`; weights from ``face-recognition-models``)
and matches it against a :class:`Gallery` of named photos, a folder per
person (``cast/Alice/*.jpg``). Faces within ``tolerance`` (dlib's usual 0.6,
Euclidean) of a gallery photo get that person's name; faces that match no
one get ``unknown-1``, ``unknown-2``, ... and keep it: the first embedding of
each unknown is remembered and matched like a gallery photo afterwards, so
the same stranger seen again gets the same name.

Embedding a crop: dlib's embedder expects a 150x150 chip aligned the way
``dlib.get_face_chip`` aligns (5 landmarks, padding 0.25). An aligned
112x112 crop is that chip at a lower resolution, so it is resized to 150x150
and embedded directly, with no second landmark pass; on the astronaut the
result lies within 0.08 of embedding the face in the full frame, far inside
the 0.6 tolerance.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from mxn.images import IMAGE_SUFFIXES, first_few, read_image

from .detection import (
    CROP_PADDING,
    FaceDetector,
    as_boxes,
    as_rgb,
    detect_faces,
    face_shapes,
    largest_box,
    model_file,
    require,
)
from .settings import DEFAULT_DETECTOR

#: dlib's usual threshold: two faces closer than this (Euclidean, 128-D) are the same person.
TOLERANCE = 0.6
#: Side of the aligned chip dlib's embedder was trained on.
DLIB_CHIP_SIZE = 150
UNKNOWN_PREFIX = "unknown-"

_log = logging.getLogger(__name__)


class Oracle(Protocol):
    """Names one face: an aligned ``(112, 112, 3)`` ``uint8`` RGB crop in, a name out."""

    def __call__(self, face: np.ndarray) -> str: ...


class GalleryError(ValueError):
    """A gallery folder that cannot be used: missing, or without one usable photo."""


def face_distances(embeddings: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Euclidean distances ``(N, M)`` between ``embeddings`` ``(N, D)`` and ``references`` ``(M, D)``."""
    a = np.asarray(embeddings, np.float64).reshape(len(embeddings), -1)
    b = np.asarray(references, np.float64).reshape(len(references), -1)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


@functools.lru_cache(maxsize=1)
def _resnet() -> Any:
    dlib = require("dlib", "dlib-bin", "dlib's face embedder")
    return dlib.face_recognition_model_v1(str(model_file("dlib_face_recognition_resnet_model_v1.dat")))


class FaceEmbedder:
    """dlib's pretrained 128-D face embedding ResNet (99.38% on LFW, per dlib).

    Args:
        num_jitters: embed each face this many times, randomly jittered, and
            average (dlib's option; 0 or 1 is one pass, 10 is 10x slower and
            slightly more accurate).
    """

    dim = 128

    def __init__(self, num_jitters: int = 0) -> None:
        if num_jitters < 0:
            raise ValueError(f"num_jitters must be >= 0, got {num_jitters}")
        self.num_jitters = num_jitters
        self._model = _resnet()

    def embed(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Embeddings ``(N, 128)`` ``float32`` of the faces in ``boxes`` of an RGB ``uint8`` ``image``.

        Each face is aligned from its 5 landmarks by dlib itself, at full resolution.
        """
        image, boxes = as_rgb(image), as_boxes(boxes)
        if len(boxes) == 0:
            return np.zeros((0, self.dim), np.float32)
        shapes = face_shapes(image, boxes)
        vectors = self._model.compute_face_descriptor(image, shapes, self.num_jitters, CROP_PADDING)
        return np.asarray([np.asarray(v) for v in vectors], np.float32).reshape(-1, self.dim)

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """Embeddings ``(N, 128)`` ``float32`` of aligned crops ``(N, S, S, 3)`` from ``aligned_crops``.

        Crops must have dlib's alignment and 0.25 padding (any size ``S``);
        they are resized to the 150x150 chip dlib's network takes.
        """
        crops = np.asarray(crops)
        if crops.ndim == 3:
            raise ValueError("expected a batch of crops (N, S, S, 3); use crop[None] for one")
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        if crops.ndim != 4 or crops.shape[3] != 3 or crops.shape[1] != crops.shape[2]:
            raise ValueError(f"expected square RGB crops (N, S, S, 3), got {crops.shape}")
        chips = [as_rgb(_to_chip(crop)) for crop in crops]
        vectors = self._model.compute_face_descriptor(chips, self.num_jitters)
        return np.asarray([np.asarray(v) for v in vectors], np.float32).reshape(-1, self.dim)


def _to_chip(crop: np.ndarray) -> np.ndarray:
    size = crop.shape[0]
    if size == DLIB_CHIP_SIZE:
        return crop
    interpolation = cv2.INTER_AREA if size > DLIB_CHIP_SIZE else cv2.INTER_LINEAR
    return cv2.resize(crop, (DLIB_CHIP_SIZE, DLIB_CHIP_SIZE), interpolation=interpolation)


@dataclass
class Gallery:
    """Embedded photos of named people: one row of ``embeddings`` per photo.

    Attributes:
        names: the person in each photo.
        embeddings: ``(N, 128)`` ``float32``, one per photo.
        sources: where each photo came from (file paths, for messages).
    """

    names: list[str]
    embeddings: np.ndarray
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = list(self.names)
        embeddings = np.asarray(self.embeddings, np.float32)
        if embeddings.size != len(self.names) * FaceEmbedder.dim:
            shape, count = embeddings.shape, len(self.names)
            raise ValueError(f"a gallery needs one 128-D embedding per name, got {shape} for {count} name(s)")
        self.embeddings = embeddings.reshape(len(self.names), FaceEmbedder.dim)
        if not self.sources:
            self.sources = [""] * len(self.names)
        if len(self.sources) != len(self.names):
            raise ValueError("a gallery needs one name and one source per embedding")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def people(self) -> list[str]:
        """The people in the gallery, sorted."""
        return sorted(set(self.names))

    @classmethod
    def from_folder(
        cls,
        root: str | Path,
        embedder: FaceEmbedder | None = None,
        detector: str | FaceDetector = DEFAULT_DETECTOR,
        max_side: int = 1024,
        log: Callable[[str], None] | None = None,
    ) -> Gallery:
        """Embed a folder per person (``root/Alice/*.jpg``): the largest face in each photo.

        Photos are shrunk to at most ``max_side`` pixels first (phone photos
        are large; faces stay large enough). Files that cannot be decoded and
        photos in which ``detector`` finds no face are skipped, and said in
        one line (:func:`skipped_photos_message`) passed to ``log``, or
        logged as a warning of this module's logger when ``log`` is ``None``:
        a line for the user, not a Python warning with a source line. A
        missing folder, or one with no usable photo at all, is a :class:`GalleryError`.
        """
        root = Path(root)
        if not root.is_dir():
            raise GalleryError(
                f"{root}: no such gallery folder (expected one sub-folder of photos per person)"
            )
        people = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not people:
            raise GalleryError(f"{root}: the gallery has no person folders (expected {root}/NAME/*.jpg)")
        embedder = embedder or FaceEmbedder()
        names, embeddings, sources, unreadable, faceless = [], [], [], [], []
        for person in people:
            for path in sorted(person.iterdir()):
                if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                    continue
                image = read_image(path)
                if image is None:
                    unreadable.append(f"{person.name}/{path.name}")
                    continue
                image = _shrink(image, max_side)
                boxes = detect_faces(image, detector)
                if len(boxes) == 0:
                    faceless.append(f"{person.name}/{path.name}")
                    continue
                box = boxes[largest_box(boxes)]
                embeddings.append(embedder.embed(image, box[None])[0])
                names.append(person.name)
                sources.append(str(path))
        if unreadable or faceless:
            missing = [p.name for p in people if p.name not in names]
            (log or _log.warning)(skipped_photos_message(root, unreadable, faceless, missing))
        if not names:
            raise GalleryError(
                f"{root}: no usable photo in the person folders (readable images {', '.join(IMAGE_SUFFIXES)} "
                "with a detectable face)"
            )
        return cls(names, np.stack(embeddings), sources)


def skipped_photos_message(
    root: str | Path, unreadable: Sequence[str], faceless: Sequence[str], missing: Sequence[str] = ()
) -> str:
    """One line saying which gallery photos were skipped and why, and who was left with no photo.

    ``unreadable`` and ``faceless`` are ``PERSON/FILE`` names (the first
    three are shown); ``missing``: the people none of whose photos was usable.
    """
    reasons = [
        f"{len(paths)} {why} ({first_few(paths)})"
        for paths, why in ((unreadable, "unreadable"), (faceless, "without a face"))
        if paths
    ]
    line = f"gallery {root}: skipped {len(unreadable) + len(faceless)} photo(s): {', '.join(reasons)}"
    return line + (f"; no usable photo left for {', '.join(missing)}" if missing else "")


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    scale = max_side / max(image.shape[:2])
    if scale >= 1.0:
        return image
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


class GalleryOracle:
    """The default oracle: nearest gallery person within ``tolerance``, else a stable ``unknown-N``.

    Call it with one aligned crop (:class:`Oracle`); :meth:`identify` names
    faces by box in a full frame, and :meth:`name_embeddings` names
    embeddings already computed. Names are given in order, so an unknown's
    number says in which order strangers first appeared. The nearest of all
    references, gallery photos and earlier unknowns alike, decides.

    Attributes:
        calls: faces named so far (the oracle's cost in the face pipeline's summary).
    """

    def __init__(self, gallery: Gallery, tolerance: float = TOLERANCE, embedder: FaceEmbedder | None = None):
        if tolerance <= 0:
            raise ValueError(f"tolerance must be > 0, got {tolerance}")
        self.gallery, self.tolerance = gallery, tolerance
        self.embedder = embedder or FaceEmbedder()
        self._names = list(gallery.names)
        self._references = np.asarray(gallery.embeddings, np.float32).reshape(-1, FaceEmbedder.dim)
        self.calls = 0

    @property
    def unknowns(self) -> dict[str, np.ndarray]:
        """Each unknown's name and the embedding it is recognised by."""
        start = len(self.gallery)
        return dict(zip(self._names[start:], self._references[start:], strict=True))

    def restore_unknowns(self, unknowns: dict[str, np.ndarray]) -> None:
        """Remember strangers named before (a movie reopened): they keep their ``unknown-N`` names.

        Only a fresh oracle can take them, in the order they were first
        named, so the next stranger gets the next number.
        """
        if len(self._names) != len(self.gallery):
            raise ValueError("restore the unknowns before the oracle names any face")
        for k, (name, vector) in enumerate(unknowns.items(), 1):
            if name != f"{UNKNOWN_PREFIX}{k}":
                raise ValueError(f"unknowns must be {UNKNOWN_PREFIX}1, 2, ... in order; got {name!r}")
            self._names.append(name)
            self._references = np.vstack([self._references, np.asarray(vector, np.float32).reshape(1, -1)])

    def __call__(self, face: np.ndarray) -> str:
        return self.name_embeddings(self.embedder.embed_crops(np.asarray(face)[None]))[0]

    def name_crops(self, crops: np.ndarray) -> list[str]:
        """Names of aligned crops ``(N, S, S, 3)``."""
        return self.name_embeddings(self.embedder.embed_crops(crops))

    def identify(self, image: np.ndarray, boxes: np.ndarray) -> list[str]:
        """Names of the faces in ``boxes`` of a full RGB frame (embedded at full resolution)."""
        return self.name_embeddings(self.embedder.embed(image, boxes))

    def name_embeddings(self, embeddings: np.ndarray) -> list[str]:
        """Names of 128-D embeddings, one after the other (a new unknown counts for the next)."""
        names = []
        for embedding in np.asarray(embeddings, np.float32).reshape(-1, FaceEmbedder.dim):
            self.calls += 1
            if len(self._references):
                distances = face_distances(embedding[None], self._references)[0]
                nearest = int(np.argmin(distances))
                if distances[nearest] <= self.tolerance:
                    names.append(self._names[nearest])
                    continue
            name = f"{UNKNOWN_PREFIX}{len(self._names) - len(self.gallery) + 1}"
            self._names.append(name)
            self._references = np.vstack([self._references, embedding[None]])
            names.append(name)
        return names
