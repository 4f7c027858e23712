"""Finding faces in frames, their 5 landmarks, and aligned crops for the face MXN.

Three detectors ship with their weights inside packages, so none downloads
anything (docs/ARCHITECTURE.md section 8):

- ``"hog"`` (the default): dlib's frontal face detector (HOG + linear SVM,
  ``dlib-bin``). It sees faces of about 80 px and more, so it upsamples the
  frame once by default (faces from about 40 px). No start-up cost.
- ``"haar"``: OpenCV's Viola-Jones cascade (``cv2.data.haarcascades``,
  ``opencv-python-headless``). Misses turned faces, and finds far fewer
  faces than the others on real footage; kept for comparison.
- ``"mtcnn"``: the MTCNN cascade of three small CNNs (``mtcnn``, TensorFlow).
  As many faces as upsampled HOG and fewer false ones; it loads in seconds,
  and per 640x360 frame costs about as much as upsampled HOG on an idle
  2-core CPU (it uses both cores), 2-3x more on a busy one.

``scripts/bench_face_detectors.py`` measures all three (speed, recall).

Every detector returns boxes as an ``(N, 4)`` ``int32`` array of
``(x1, y1, x2, y2)`` with exclusive ends, clipped to the frame and sorted
top-to-bottom, left-to-right (the convention of :mod:`mxn.ingest.extraction`).
A frame with no face gives a ``(0, 4)`` array.

Alignment uses dlib's 5-point shape predictor (eye corners and nose, from
``face-recognition-models``; the 68-point model has a non-commercial data
licence) and ``dlib.get_face_chip``: the same similarity transform that dlib's
face embedder applies, so an aligned crop is exactly what the oracle
(:mod:`mxn.facerec.oracle`) embeds, and what the face MXN sees.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from .settings import DEFAULT_DETECTOR, DETECTORS  # the names make_detector knows, the default first

#: Side of the aligned face crops, in pixels: the MXN input size in the paper.
CROP_SIZE = 112
#: Context around the face in an aligned crop, as a fraction of the face's size: dlib's default,
#: which its 128-D embedder was trained with.
CROP_PADDING = 0.25


def require(module: str, package: str, purpose: str) -> Any:
    """Import ``module``, or fail with an ``ImportError`` that names the pip ``package`` to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{purpose} needs the {package!r} package, which is not installed: pip install {package}"
        ) from err


def model_file(name: str) -> Path:
    """A dlib model file shipped by ``face-recognition-models``, found without importing that package.

    Its ``__init__`` looks paths up through ``pkg_resources``, which newer
    setuptools releases deprecate; the files themselves are all we need.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "dlib's face models need the 'face-recognition-models' package, which is not installed: "
            "pip install face-recognition-models"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing from the installed face-recognition-models package")
    return path


def as_rgb(image: np.ndarray) -> np.ndarray:
    """``image`` as a C-contiguous ``uint8`` ``(H, W, 3)`` array (grey images get three channels).

    dlib accepts nothing else, so every entry point checks here once, with a
    readable error instead of dlib's overload-resolution message.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    return np.ascontiguousarray(image)


def as_boxes(boxes: np.ndarray | list) -> np.ndarray:
    """``boxes`` as an ``(N, 4)`` ``int32`` array of ``(x1, y1, x2, y2)`` with x2 > x1 and y2 > y1."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if np.any(boxes[:, 2] <= boxes[:, 0]) or np.any(boxes[:, 3] <= boxes[:, 1]):
        raise ValueError("every box must be (x1, y1, x2, y2) with x2 > x1 and y2 > y1")
    return np.round(boxes).astype(np.int32)


def clip_boxes(boxes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Boxes clipped to a frame of ``shape`` (H, W, ...), empty ones dropped, sorted by rows then columns.

    Detectors report faces that run off the frame's edge with coordinates
    outside it; callers index the frame with these boxes.
    """
    height, width = shape[:2]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).round()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])].astype(np.int32)
    return boxes[np.lexsort((boxes[:, 0], boxes[:, 1]))]


def largest_box(boxes: np.ndarray) -> int:
    """Index of the box with the largest area (the person a portrait photo is of)."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    if len(boxes) == 0:
        raise ValueError("no boxes")
    return int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))


class FaceDetector(Protocol):
    """Anything that finds faces: an RGB ``uint8`` frame in, ``(N, 4)`` ``int32`` boxes out."""

    name: str

    def detect(self, image: np.ndarray) -> np.ndarray: ...


class HogDetector:
    """dlib's HOG frontal face detector.

    Args:
        upsample: times the frame is doubled before detection; each one halves
            the smallest face found (about 80 px at 0, 40 px at 1) and makes
            detection several times slower (4x the pixels).
        min_score: SVM score a face needs (dlib's default 0; higher drops
            false faces and faint true ones alike: on the carphone clip true
            faces score from 0.06, false ones on the astronaut up to 0.4).
    """

    name = "hog"

    def __init__(self, upsample: int = 1, min_score: float = 0.0) -> None:
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        dlib = require("dlib", "dlib-bin", "the 'hog' face detector")
        self.upsample, self.min_score = upsample, min_score
        self._detector = dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> np.ndarray:
        image = as_rgb(image)
        rects, _, _ = self._detector.run(image, self.upsample, self.min_score)
        return clip_boxes([(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in rects], image.shape)


class HaarDetector:
    """OpenCV's Haar cascade for frontal faces (Viola-Jones).

    Args:
        scale_factor: step of the image pyramid (smaller finds more, slower).
        min_neighbors: overlapping hits a face needs (larger: fewer false faces).
        min_size: smallest face side searched for, in pixels.
        cascade: file name in ``cv2.data.haarcascades``.
    """

    name = "haar"

    def __init__(
        self,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
        cascade: str = "haarcascade_frontalface_default.xml",
    ) -> None:
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor}")
        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if folder is None:  # opencv-python 5.x wheels dropped the cascades
            raise ImportError(
                "the 'haar' face detector needs OpenCV's Haar cascades (cv2.data.haarcascades), shipped by "
                "opencv-python-headless 4.x: pip install 'opencv-python-headless<5'"
            )
        path = Path(folder) / cascade
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise FileNotFoundError(f"{path}: not an OpenCV cascade file")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def detect(self, image: np.ndarray) -> np.ndarray:
        image = as_rgb(image)
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        found = self._cascade.detectMultiScale(
            grey, self.scale_factor, self.min_neighbors, minSize=(self.min_size, self.min_size)
        )
        found = np.asarray(found, dtype=np.int64).reshape(-1, 4)
        found[:, 2:] += found[:, :2]  # (x, y, w, h) -> (x1, y1, x2, y2)
        return clip_boxes(found, image.shape)


class MtcnnDetector:
    """MTCNN (P-, R- and O-Net), with the weights that ship inside the ``mtcnn`` package.

    Args:
        min_face_size: smallest face side searched for, in pixels.
        min_confidence: O-Net score a face needs.
        device: TensorFlow device the three networks run on.
    """

    name = "mtcnn"

    def __init__(self, min_face_size: int = 20, min_confidence: float = 0.9, device: str = "CPU:0") -> None:
        from mxn.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()
        package = require("mtcnn", "mtcnn", "the 'mtcnn' face detector")
        from mtcnn import MTCNN
        from mtcnn.stages import StageONet, StagePNet, StageRNet

        # mtcnn looks for its weights in the working directory before its own assets;
        # absolute paths make sure the packaged weights are the ones loaded.
        weights = Path(package.__file__).parent / "assets" / "weights"
        stages = [
            stage(weights=str(weights / f"{net}.lz4"))
            for stage, net in ((StagePNet, "pnet"), (StageRNet, "rnet"), (StageONet, "onet"))
        ]
        self._mtcnn = MTCNN(stages=stages, device=device)
        self.min_face_size, self.min_confidence = min_face_size, min_confidence

    def detect(self, image: np.ndarray) -> np.ndarray:
        image = as_rgb(image)
        rows = self._mtcnn.detect_faces(
            image, box_format="xyxy", output_type="numpy", min_face_size=self.min_face_size
        )
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or len(rows) == 0:
            return np.zeros((0, 4), np.int32)
        # Columns: batch index, x1, y1, x2, y2, confidence, then the 5 landmarks.
        rows = rows[rows[:, 5] >= self.min_confidence]
        return clip_boxes(rows[:, 1:5], image.shape)


_DETECTOR_CLASSES = {"hog": HogDetector, "haar": HaarDetector, "mtcnn": MtcnnDetector}


def make_detector(name: str = DEFAULT_DETECTOR, **options: Any) -> FaceDetector:
    """A new detector by name (``"hog"``, ``"haar"`` or ``"mtcnn"``), with its class's keyword options."""
    if name not in _DETECTOR_CLASSES:
        raise ValueError(f"unknown face detector {name!r}; choose one of {list(DETECTORS)}")
    return _DETECTOR_CLASSES[name](**options)


@functools.cache
def _default_detector(name: str) -> FaceDetector:
    return make_detector(name)


def detect_faces(image: np.ndarray, detector: str | FaceDetector = DEFAULT_DETECTOR) -> np.ndarray:
    """Face boxes ``(N, 4)`` ``int32`` ``(x1, y1, x2, y2)`` in an RGB ``uint8`` image.

    ``detector`` is a name (a detector with default options, built once and
    reused: MTCNN takes seconds to load) or any :class:`FaceDetector`.
    """
    return (_default_detector(detector) if isinstance(detector, str) else detector).detect(image)


# -- landmarks and alignment ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def shape_predictor() -> Any:
    """dlib's 5-point shape predictor (loaded once)."""
    dlib = require("dlib", "dlib-bin", "face landmarks")
    return dlib.shape_predictor(str(model_file("shape_predictor_5_face_landmarks.dat")))


def face_shapes(image: np.ndarray, boxes: np.ndarray) -> Any:
    """dlib ``full_object_detections`` (5 landmarks each) for the faces in ``boxes``, in order."""
    dlib = require("dlib", "dlib-bin", "face landmarks")
    image, boxes = as_rgb(image), as_boxes(boxes)
    predictor = shape_predictor()
    shapes = dlib.full_object_detections()
    for x1, y1, x2, y2 in boxes.tolist():
        shapes.append(predictor(image, dlib.rectangle(x1, y1, x2 - 1, y2 - 1)))
    return shapes


def face_landmarks_5(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The 5 landmarks of each face, ``(N, 5, 2)`` ``float32`` ``(x, y)`` in image pixels.

    dlib's order: right eye outer and inner corner, left eye outer and inner
    corner (image right to left), then the bottom of the nose.
    """
    shapes = face_shapes(image, boxes)
    points = [[(p.x, p.y) for p in shape.parts()] for shape in shapes]
    return np.asarray(points, dtype=np.float32).reshape(-1, 5, 2)


def aligned_crops(
    image: np.ndarray, boxes: np.ndarray, size: int = CROP_SIZE, padding: float = CROP_PADDING
) -> np.ndarray:
    """Aligned square face crops ``(N, size, size, 3)`` ``uint8`` RGB, one per box.

    Each face is rotated upright, scaled and centred from its 5 landmarks the
    way dlib's embedder aligns faces (``dlib.get_face_chip``), with
    ``padding`` of context around it. Faces at the frame's edge are filled
    with black where the frame ends.
    """
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    dlib = require("dlib", "dlib-bin", "aligned face crops")
    image = as_rgb(image)
    shapes = face_shapes(image, boxes)
    if len(shapes) == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    chips = dlib.get_face_chips(image, shapes, size=size, padding=padding)
    return np.stack([np.asarray(chip, dtype=np.uint8) for chip in chips])
