"""Faces of a movie with known truth, ready to replay: detection once, features and oracle once.

Tuning (:mod:`mxn.facerec.tuning`) and the benchmark replay Algorithm 3 many
times over the same faces. Everything expensive is done here once per
movie: the detector and the alignment (:func:`detect_movie`), the face
MXN's features at every exit and the oracle's answer for every face
(:func:`build_sample`), each timed, so the replays cost no model at all.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mxn.images import box_iou
from mxn.media.video import iter_frames

from .detection import CROP_SIZE, FaceDetector, aligned_crops, make_detector
from .pipeline import keep_faces
from .settings import DEFAULT_DETECTOR, FaceConfig
from .truth import read_truth
from .tuning import FaceSample

#: A detection is a drawn face when their boxes overlap at least this much.
MIN_TRUTH_IOU = 0.4


@dataclass
class DetectedFaces:
    """Every face the detector found in a movie, in order, with its aligned crop."""

    frames: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    truth: list[str | None] = field(default_factory=list)
    truth_faces: int = 0  # faces drawn in the labelled frames
    frames_seen: int = 0
    detect_seconds: float = 0.0  # decode excluded: detection and alignment

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def detection_recall(self) -> float:
        """Share of drawn faces the detector found (in the frames it looked at)."""
        return sum(t is not None for t in self.truth) / self.truth_faces if self.truth_faces else 0.0

    def crop_array(self) -> np.ndarray:
        return np.stack(self.crops) if self.crops else np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)


def match_truth(
    boxes: np.ndarray, truth: Sequence[tuple[str, Sequence[int]]], min_iou: float = MIN_TRUTH_IOU
) -> list[str | None]:
    """Each detected box's true person: the drawn face it overlaps most (greedy, one detection each)."""
    names: list[str | None] = [None] * len(boxes)
    if len(boxes) == 0 or not truth:
        return names
    iou = box_iou(np.asarray(boxes, np.float32), np.asarray([b for _, b in truth], np.float32))
    for flat in np.argsort(-iou, axis=None):
        d, t = np.unravel_index(flat, iou.shape)
        if iou[d, t] < min_iou:
            break
        if names[d] is None and truth[t][0] not in [n for n in names if n is not None]:
            names[d] = truth[t][0]
    return names


def detect_movie(
    path: str | Path,
    truth: dict[int, list[tuple[str, Sequence[int]]]] | None = None,
    detector: str | FaceDetector = DEFAULT_DETECTOR,
    stride: int = FaceConfig.stride,
    min_face: int = FaceConfig.min_face,
) -> DetectedFaces:
    """Detect and align every face of ``path`` (every ``stride``-th frame); match them to ``truth``.

    ``truth`` maps a frame index to its drawn faces ``[(name, box), ...]``.
    """
    detector = make_detector(detector) if isinstance(detector, str) else detector
    found = DetectedFaces()
    for frame in iter_frames(path, stride=stride):
        t0 = time.perf_counter()
        boxes = keep_faces(detector.detect(frame.image), min_face)
        crops = aligned_crops(frame.image, boxes, size=CROP_SIZE) if len(boxes) else []
        found.detect_seconds += time.perf_counter() - t0
        drawn = (truth or {}).get(frame.index, [])
        found.truth_faces += len(drawn)
        names = match_truth(boxes, drawn) if truth is not None else [None] * len(boxes)
        for box, crop, name in zip(boxes, crops, names, strict=True):
            found.frames.append(frame.index)
            found.times.append(frame.time)
            found.boxes.append(tuple(int(v) for v in box))
            found.crops.append(crop)
            found.truth.append(name)
        found.frames_seen += 1
    return found


def build_sample(
    faces: DetectedFaces, face_model: Any, oracle: Any, gallery: set[str] | None = None
) -> tuple[FaceSample, dict[str, float]]:
    """Features at every exit (batched) and the oracle's name for every face, with their seconds.

    ``oracle`` needs ``name_crops`` (a :class:`mxn.facerec.oracle.GalleryOracle`):
    it names every face in order, as "the oracle on every face" does.
    """
    crops = faces.crop_array()
    t0 = time.perf_counter()
    if len(crops):
        features = face_model.embed_all(crops)
    else:
        features = [np.zeros((0, d), np.float32) for d in face_model.dims]
    t1 = time.perf_counter()
    names = oracle.name_crops(crops) if len(crops) else []
    t2 = time.perf_counter()
    sample = FaceSample(list(features), list(names), list(faces.truth), set(gallery or ()))
    return sample, {"mxn_all_exits_s": t1 - t0, "oracle_s": t2 - t1}


def truth_sample(
    videos: Sequence[str | Path],
    face_model: Any,
    oracle: Any,
    gallery: set[str] | None = None,
    detector: str | FaceDetector = DEFAULT_DETECTOR,
    stride: int = FaceConfig.stride,
) -> tuple[FaceSample, dict[str, Any]]:
    """One :class:`~mxn.facerec.tuning.FaceSample` over movies whose truth files lie beside them.

    The movies are taken in order as one film (the oracle and the replays
    carry their memory across them). Also returns the detector's recall per
    movie and the seconds of detection, all-exits features and the oracle.
    """
    samples, info = [], {"detection_recall": [], "faces": [], "detect_s": 0.0, "mxn_all_exits_s": 0.0,
                         "oracle_s": 0.0}  # fmt: skip
    detector = make_detector(detector) if isinstance(detector, str) else detector
    for video in videos:
        truth = read_truth(video)  # the NAME.truth.jsonl beside NAME.mp4
        found = detect_movie(video, dict(enumerate(truth.frames)), detector, stride)
        sample, timing = build_sample(found, face_model, oracle, gallery)
        samples.append(sample)
        info["detection_recall"].append(found.detection_recall)
        info["faces"].append(len(found))
        info["detect_s"] += found.detect_seconds
        for key, value in timing.items():
            info[key] += value
    if not any(len(s) for s in samples):
        raise ValueError(f"the detector found no face in {[str(v) for v in videos]}")
    merged = FaceSample(
        [np.concatenate([s.features[i] for s in samples]) for i in range(len(samples[0].features))],
        [n for s in samples for n in s.oracle_names],
        [t for s in samples for t in s.truth],
        set(gallery or ()),
    )
    return merged, info
