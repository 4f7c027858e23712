"""A real face image and the geometry of pasting it into a frame, with the truth box it gets there.

A :class:`Source` is a real image and the face dlib's HOG detector finds in
it (:func:`find_face`). Pasting maps it into a frame by an affine transform
(:func:`paste_transform`, :func:`paste`), and the face's truth box is the
detector's box carried by that same transform (:func:`truth_box`), so a
detector run on the frame is scored against a box of its own kind. Both the
cast (which keeps only sources still found at movie size,
:func:`found_when_small`) and the composer use these.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from mxn.facerec.detection import FaceDetector, as_rgb, detect_faces, largest_box
from mxn.images import box_iou


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: the mask cache keys on it
class Source:
    """One real face image: the image, its face box, and other faces in it to keep out of the paste."""

    image: np.ndarray
    face: np.ndarray
    others: np.ndarray
    label: str


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


def _level(source: Source, scale: float) -> tuple[np.ndarray, float]:
    """The source image, halved while the paste shrinks it below half (avoids aliasing), and its factor."""
    image, factor = source.image, 1.0
    while scale / factor < 0.5 and min(image.shape[:2]) > 64:
        image, factor = cv2.pyrDown(image), factor / 2
    return image, factor


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


# -- which sources are usable -------------------------------------------------------------------------------


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
