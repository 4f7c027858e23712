"""Streaming video decoding: one frame in memory at a time, whatever the video's length.

Videos are identified by the SHA-256 of their bytes, so a renamed or moved
file is still the same video and an edited one is a new video.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# FFmpeg's own log lines ("moov atom not found", "overread 8") say on stderr, in its words, what
# VideoError then says in ours; one clear line is enough. Read when the first capture opens; a user
# who wants them sets OPENCV_FFMPEG_LOGLEVEL (e.g. 24) in the environment.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


#: No container stores a frame in fewer bytes (an MP4 sample-size entry alone is 4): a header that
#: announces more frames than its file can hold is damaged, and planning work by it would run away.
MIN_FRAME_BYTES = 4


@dataclass(frozen=True)
class VideoInfo:
    """A video file as probed before ingest."""

    name: str  # the file name, shown to users ("downtown.mp4")
    path: str  # absolute path at ingest time (informative: videos move)
    content_hash: str  # sha256 hex of the file's bytes: the video's identity
    fps: float
    width: int
    height: int
    frame_count: int  # as the container says; decoding may find fewer
    duration_s: float


class VideoError(Exception):
    """A video that is missing, unreadable, corrupt, truncated or in an unsupported format."""


@dataclass(frozen=True)
class DecodedFrame:
    index: int  # position in the video, counting every frame (strided or not)
    time: float  # seconds from the start
    image: np.ndarray  # H x W x 3 uint8, RGB


def content_hash(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """SHA-256 hex digest of the file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _open(path: Path) -> cv2.VideoCapture:
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty")
    # FFmpeg only: for a file FFmpeg cannot open, OpenCV would try its own AVI reader, which reads
    # nothing FFmpeg cannot and prints raw header bytes to stderr on the way; OpenCV's warning that
    # FFmpeg failed is VideoError's to say, in one line
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not capture.isOpened():
        capture.release()
        raise VideoError(f"{path}: OpenCV cannot open it (corrupt, truncated, or an unsupported format)")
    return capture


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate and length from the container, plus the content hash.

    The first frame is decoded as well, because a damaged file often opens
    but yields nothing.
    """
    path = Path(path)
    capture = _open(path)
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, first = capture.read()
    finally:
        capture.release()
    if not ok or first is None:
        raise VideoError(f"{path}: no frame could be decoded (corrupt or unsupported codec)")
    if fps <= 0 or not np.isfinite(fps):
        raise VideoError(f"{path}: the container gives no frame rate")
    frames = max(frames, 0)
    size = path.stat().st_size
    if frames * MIN_FRAME_BYTES > size:
        raise VideoError(
            f"{path}: the container announces {frames} frames, more than its {size} bytes can hold "
            "(a damaged or forged header)"
        )
    return VideoInfo(
        name=path.name,
        path=str(path.resolve()),
        content_hash=content_hash(path),
        fps=fps,
        width=width or first.shape[1],
        height=height or first.shape[0],
        frame_count=frames,
        duration_s=frames / fps,
    )


def iter_frames(
    path: str | os.PathLike,
    start: int = 0,
    stop: int | None = None,
    stride: int = 1,
    fps: float | None = None,
) -> Iterator[DecodedFrame]:
    """Frames ``start, start + stride, ...`` below ``stop`` (default: the end), decoded one at a time.

    Frames before ``start`` are skipped with ``grab`` (decoded, never
    converted), which is exact for every codec, unlike seeking. The iterator
    ends early when the file ends; :func:`check_complete` tells a short
    video from a truncated one.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    path = Path(path)
    capture = _open(path)
    try:
        rate = fps or float(capture.get(cv2.CAP_PROP_FPS) or 30.0)
        index = 0
        while index < start:
            if not capture.grab():
                return
            index += 1
        while stop is None or index < stop:
            if (index - start) % stride == 0:
                ok, bgr = capture.read()
                if not ok:
                    return
                yield DecodedFrame(index, index / rate, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            elif not capture.grab():
                return
            index += 1
    finally:
        capture.release()


def read_frames(
    path: str | os.PathLike, indices: Iterable[int], fps: float | None = None
) -> Iterator[DecodedFrame]:
    """The frames at ``indices`` (sorted, duplicates dropped), decoded in one forward pass.

    Frames in between are skipped with ``grab``, exact for every codec.
    Raises :class:`VideoError` when the video ends before the last index
    (the file changed since it was indexed).
    """
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        return
    if wanted[0] < 0:
        raise ValueError(f"frame indices must be >= 0, got {wanted[0]}")
    path = Path(path)
    capture = _open(path)
    try:
        rate = fps or float(capture.get(cv2.CAP_PROP_FPS) or 30.0)
        index = 0
        for target in wanted:
            while index <= target:
                if not capture.grab():
                    raise VideoError(
                        f"{path}: the video ends before frame {target} (was it changed since it was indexed?)"
                    )
                index += 1
            ok, bgr = capture.retrieve()
            if not ok:
                raise VideoError(f"{path}: frame {target} cannot be decoded")
            yield DecodedFrame(target, target / rate, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()


def check_complete(info: VideoInfo, frames_seen: int, tolerance: int = 2, until: int | None = None) -> None:
    """Raise :class:`VideoError` when decoding ended well before the container's frame count.

    Containers round their counts, so a couple of frames of slack are allowed.
    ``until`` checks a range of frames instead: decoding must reach it (or the
    frame count, whichever comes first).
    """
    expected = info.frame_count if until is None else min(until, info.frame_count or until)
    if expected and frames_seen < expected - tolerance:
        raise VideoError(
            f"{info.name}: truncated or damaged: decoding stopped at frame {frames_seen} "
            f"of the {info.frame_count} the container announces"
        )
