"""What labelling faces does unless told otherwise, in one module that imports nothing heavy.

The pipeline, the labeller and the detectors read their defaults from here,
and so do the Python API and the command line when they start: the working
modules of :mod:`mxn.facerec` load NumPy, OpenCV and dlib, this one loads
none of them. The target accuracy face tuning aims at is the house's own,
:mod:`mxn.targets`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: The detector names :func:`mxn.facerec.detection.make_detector` knows, the default first.
DETECTORS = ("hog", "haar", "mtcnn")
DEFAULT_DETECTOR = DETECTORS[0]
#: The dissertation's default rate of the running averages (1/alpha = 15).
DEFAULT_ALPHA = 1 / 15
#: A face MXN learns from the faces of every N-th video frame (neighbouring frames repeat a face).
TRAINING_STRIDE = 5
#: The face MXN's width multiplier (:func:`mxn.facerec.model.face_spec`).
FACE_WIDTH = 0.25


@dataclass(frozen=True)
class FaceConfig:
    """Every setting that shapes a movie's labels. Validated on construction.

    Args:
        thresholds: per exit, the largest distance at which its nearest
            person is taken (``None``: that exit never decides); from
            ``mxn tune faces``.
        alpha: the running averages' rate (1/alpha = 15 in the paper).
        detector: ``"hog"`` (default), ``"haar"`` or ``"mtcnn"``.
        stride: label every ``stride``-th frame.
        min_face: ignore faces whose box is smaller than this many pixels a side.
        chunk_frames: frames per committed chunk (the most a killed run redoes).
    """

    thresholds: tuple[float | None, ...]
    alpha: float = DEFAULT_ALPHA
    detector: str = DEFAULT_DETECTOR
    stride: int = 1
    min_face: int = 20
    chunk_frames: int = 300

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "thresholds", tuple(None if t is None else float(t) for t in self.thresholds)
        )
        if not self.thresholds:
            raise ValueError("give one threshold per exit of the face model")
        if any(t is not None and not t >= 0 for t in self.thresholds):
            raise ValueError(f"thresholds are distances (>= 0 or None), got {list(self.thresholds)}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must lie in (0, 1], got {self.alpha}")
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown face detector {self.detector!r}; choose one of {list(DETECTORS)}")
        if self.stride < 1 or self.chunk_frames < 1 or self.min_face < 1:
            raise ValueError("stride, chunk_frames and min_face must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["thresholds"] = list(self.thresholds)
        return data
