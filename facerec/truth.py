"""The truth file beside a movie: who is drawn where in every frame, one JSON line per frame.

The format lives with the face stage because the stage reads it: ``mxn tune
faces`` (:mod:`mxn.facerec.evaluation`) scores the detector and the oracle
against it, and a stage may not import the data sets above it. The
evaluation movies (:mod:`mxn.datasets.movies`) write it with
:func:`header_line` and :func:`frame_line`, so the layout is defined here
and nowhere else.

``NAME.truth.jsonl`` goes with ``NAME.mp4``. Its first line is
``{"movie": {...}}`` with at least the keys of :data:`HEADER_KEYS`; then one
line per frame, in order: ``{"frame": i, "time": seconds, "faces": [{"name":
str, "box": [x1, y1, x2, y2]}, ...]}``, boxes in detector style (pixels,
``x2 > x1`` and ``y2 > y1``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

#: Suffix of the truth file next to ``NAME.mp4``.
TRUTH_SUFFIX = ".truth.jsonl"
#: Keys the header line's ``movie`` object must have.
HEADER_KEYS = ("seed", "fps", "width", "height", "frames", "cast")


class Face(NamedTuple):
    """One face drawn in a frame: who, and the detector-style box ``(x1, y1, x2, y2)`` in pixels."""

    name: str
    box: tuple[int, int, int, int]


class TruthFileError(ValueError):
    """A truth file that cannot be read: missing, not JSON lines, or not in this module's layout."""


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


# -- writing ------------------------------------------------------------------------------------------------


def header_line(movie: dict[str, Any]) -> str:
    """The file's first line, newline included: ``{"movie": movie}`` (``movie`` has :data:`HEADER_KEYS`)."""
    return json.dumps({"movie": movie}) + "\n"


def frame_line(index: int, time: float, faces: Sequence[Face]) -> str:
    """One frame's line, newline included: its index, its time (rounded to microseconds) and its faces."""
    row = {
        "frame": index,
        "time": round(time, 6),
        "faces": [{"name": face.name, "box": list(face.box)} for face in faces],
    }
    return json.dumps(row) + "\n"


# -- reading ------------------------------------------------------------------------------------------------


def read_truth(path: str | Path) -> Truth:
    """Read a truth file (``NAME.truth.jsonl``, or the ``NAME.mp4`` beside it).

    Raises :class:`TruthFileError` naming the file and line for anything
    that is not the layout: frames out of order, a missing header, boxes
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
    header = _header(path, rows[0])
    frames: list[list[Face]] = []
    times: list[float] = []
    for number, line in enumerate(rows[1:], start=2):
        row = _row(path, number, line)
        if row.get("frame") != len(frames) or not isinstance(row.get("faces"), list):
            raise TruthFileError(
                f"{path}:{number}: expected {{'frame': {len(frames)}, 'time': ..., 'faces': [...]}}, "
                f"got {line.strip()[:80]}"
            )
        frames.append([_face(path, number, face) for face in row["faces"]])
        times.append(float(row.get("time", len(times) / header["fps"])))
    if len(frames) != header["frames"]:
        raise TruthFileError(
            f"{path}: the header promises {header['frames']} frames, the file has {len(frames)}"
        )
    return Truth(header, frames, times)


def _row(path: Path, number: int, line: str) -> dict[str, Any]:
    """Line ``number`` as a JSON object."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise TruthFileError(f"{path}:{number}: not JSON ({err.msg})") from None
    if not isinstance(row, dict):
        raise TruthFileError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
    return row


def _header(path: Path, line: str) -> dict[str, Any]:
    """The first line's ``movie`` object, with every key of :data:`HEADER_KEYS`."""
    header = _row(path, 1, line).get("movie")
    if not isinstance(header, dict) or any(key not in header for key in HEADER_KEYS):
        raise TruthFileError(
            f"{path}:1: the first line must be {{'movie': {{...}}}} with keys {list(HEADER_KEYS)}"
        )
    return header


def _face(path: Path, number: int, face: object) -> Face:
    """One ``{"name": str, "box": [x1, y1, x2, y2]}`` of line ``number`` as a :class:`Face`."""
    if isinstance(face, dict):
        name, box = face.get("name"), face.get("box")
        if isinstance(name, str) and _is_box(box):
            return Face(name, (box[0], box[1], box[2], box[3]))
    raise TruthFileError(
        f"{path}:{number}: a face must be {{'name': str, 'box': [x1, y1, x2, y2]}}, got {face}"
    )


def _is_box(box: object) -> bool:
    """Four integers ``[x1, y1, x2, y2]`` with ``x2 > x1`` and ``y2 > y1``."""
    return (
        isinstance(box, list)
        and len(box) == 4
        and all(isinstance(v, int) for v in box)
        and box[2] > box[0]
        and box[3] > box[1]
    )
