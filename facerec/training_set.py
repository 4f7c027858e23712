"""Aligned face crops from the user's own videos and photos: what a face MXN is distilled on.

The face MXN only has to tell apart the people of the user's movies, and it
learns that best from their faces: ``mxn train faces movie.mp4 cast/``
collects every face the detector finds (every ``stride``-th frame of each
video, every photo under each folder), aligns it exactly as the pipeline
will, and the oracle's embedder gives the targets.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mxn.images import IMAGE_SUFFIXES, read_image
from mxn.media.video import iter_frames

from .detection import CROP_SIZE, FaceDetector, aligned_crops, make_detector
from .pipeline import keep_faces
from .settings import DEFAULT_DETECTOR, TRAINING_STRIDE, FaceConfig

#: Video files :func:`collect_face_crops` reads (anything else in a folder is taken for a photo or skipped).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def _images(source: Path, stride: int) -> Iterator[np.ndarray]:
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.suffix.lower() in VIDEO_SUFFIXES:
                yield from _images(path, stride)
            elif path.suffix.lower() in IMAGE_SUFFIXES and (image := read_image(path)) is not None:
                yield image
    elif source.suffix.lower() in IMAGE_SUFFIXES:
        image = read_image(source)
        if image is None:
            raise ValueError(f"{source}: not a readable image")
        yield image
    else:
        for frame in iter_frames(source, stride=stride):
            yield frame.image


def collect_face_crops(
    sources: Sequence[str | Path],
    detector: str | FaceDetector = DEFAULT_DETECTOR,
    stride: int = TRAINING_STRIDE,
    min_face: int = FaceConfig.min_face,
    max_faces: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Aligned ``(N, 112, 112, 3)`` crops of every face in ``sources`` (videos, photos, folders of either)."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    detector = make_detector(detector) if isinstance(detector, str) else detector
    crops: list[np.ndarray] = []
    bar = tqdm(desc="collecting faces", unit="face", disable=not progress)
    for source in sources:
        source = Path(source)
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such video, photo or folder")
        for image in _images(source, stride):
            boxes = keep_faces(detector.detect(image), min_face)
            if len(boxes):
                crops.extend(aligned_crops(image, boxes, size=CROP_SIZE))
                bar.update(len(boxes))
            if max_faces is not None and len(crops) >= max_faces:
                break
        if max_faces is not None and len(crops) >= max_faces:
            break
    bar.close()
    if not crops:
        raise ValueError(f"no face found in {[str(s) for s in sources]}")
    return np.stack(crops[:max_faces])
