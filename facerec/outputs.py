"""What a labelled movie gives its user: face rows, who appears when, subtitles, an annotated video.

Everything here is a pure function of the face rows (:class:`LabelledFace`)
that :mod:`mxn.facerec.pipeline` produces or reads back from SQL, so an answer
written today from a fresh run and one written tomorrow from the database are
the same file.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mxn.media.segments import merge_segments
from mxn.media.text import draw_text, label_size

#: Appearances closer than this (seconds) are one segment of a person's timeline.
DEFAULT_MAX_GAP = 1.0
#: Row formats :func:`write_faces` writes, by file suffix.
ROW_FORMATS = (".json", ".csv")


@dataclass(frozen=True)
class LabelledFace:
    """One face in one frame: where, who, and who said so."""

    video: str  # the video's file name
    frame: int
    time: float  # seconds from the start of the video
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive ends), pixels
    name: str
    exit: int | None  # the exit whose database matched; None: the oracle named the face
    distance: float | None  # the matching distance at that exit (None for the oracle)

    @property
    def decided_by(self) -> str:
        return "oracle" if self.exit is None else f"exit {self.exit}"

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["box"] = list(self.box)
        row["decided_by"] = self.decided_by
        return row


def person_timeline(
    faces: Iterable[LabelledFace], max_gap: float = DEFAULT_MAX_GAP
) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Who appears when: ``{person: {video: [(start, end), ...]}}``, people sorted by name."""
    times: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for face in faces:
        times[face.name][face.video].append(face.time)
    return {
        name: {video: merge_segments(ts, max_gap) for video, ts in sorted(videos.items())}
        for name, videos in sorted(times.items())
    }


def screen_time(timeline: dict[str, dict[str, list[tuple[float, float]]]]) -> dict[str, float]:
    """Seconds each person is on screen, summed over their segments."""
    return {
        name: sum(end - start for segments in videos.values() for start, end in segments)
        for name, videos in timeline.items()
    }


def summarize(faces: Sequence[LabelledFace], num_exits: int) -> dict[str, Any]:
    """Faces, hits and hit rate per exit, oracle calls and people, from the rows alone."""
    hits = [0] * num_exits
    oracle = 0
    for face in faces:
        if face.exit is None:
            oracle += 1
        else:
            hits[face.exit] += 1
    n = len(faces)
    return {
        "faces": n,
        "hits_per_exit": hits,
        "hit_rate_per_exit": [h / n if n else 0.0 for h in hits],
        "oracle_calls": oracle,
        "oracle_rate": oracle / n if n else 0.0,
        "people": sorted({f.name for f in faces}),
    }


def write_faces(
    faces: Sequence[LabelledFace],
    path: str | os.PathLike,
    extra: dict[str, Any] | None = None,
    max_gap: float = DEFAULT_MAX_GAP,
) -> Path:
    """Write the rows: ``.json`` (rows, timeline and ``extra``, e.g. the summary) or ``.csv`` (rows only)."""
    path = Path(path)
    if path.suffix.lower() not in ROW_FORMATS:
        raise ValueError(f"{path}: the face rows are written as {' or '.join(ROW_FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".json":
        timeline = person_timeline(faces, max_gap)
        data = {
            **(extra or {}),
            "timeline": {
                n: {v: [list(s) for s in segs] for v, segs in vs.items()} for n, vs in timeline.items()
            },
            "faces": [f.to_dict() for f in faces],
        }
        tmp.write_text(json.dumps(data, indent=1))
    else:
        fields = ["video", "frame", "time", "x1", "y1", "x2", "y2", "name", "decided_by", "distance"]
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(fields)
            for f in faces:
                distance = "" if f.distance is None else f"{f.distance:.4f}"
                writer.writerow([f.video, f.frame, f"{f.time:.3f}", *f.box, f.name, f.decided_by, distance])
    os.replace(tmp, path)
    return path


def _srt_clock(seconds: float) -> str:
    millis = round(max(seconds, 0.0) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def subtitle_cues(
    faces: Iterable[LabelledFace], frame_seconds: float, max_gap: float | None = None
) -> list[tuple[float, float, str]]:
    """``(start, end, text)`` cues: runs of frames showing the same set of people.

    Each labelled frame lasts ``frame_seconds`` (the detection stride over
    the frame rate); neighbouring frames with the same names, no further
    apart than ``max_gap`` (default: two frames), share one cue.
    """
    if frame_seconds <= 0:
        raise ValueError(f"frame_seconds must be > 0, got {frame_seconds}")
    gap = 2 * frame_seconds if max_gap is None else max_gap
    by_time: dict[float, set[str]] = defaultdict(set)
    for face in faces:
        by_time[face.time].add(face.name)
    cues: list[tuple[float, float, str]] = []
    for time in sorted(by_time):
        text = ", ".join(sorted(by_time[time]))
        if cues and cues[-1][2] == text and time - cues[-1][1] <= gap:
            cues[-1] = (cues[-1][0], time + frame_seconds, text)
        else:
            cues.append((time, time + frame_seconds, text))
    return cues


def write_srt(cues: Sequence[tuple[float, float, str]], path: str | os.PathLike) -> Path:
    """Subtitles (SubRip) naming who is on screen."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = [f"{k}\n{_srt_clock(s)} --> {_srt_clock(e)}\n{text}\n" for k, (s, e, text) in enumerate(cues, 1)]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(blocks))
    os.replace(tmp, path)
    return path


#: Box colours (RGB) for the annotated video, one per person in order of appearance.
_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]  # fmt: skip
#: Pixel size of the names on the annotated video (DejaVu Sans; about OpenCV's Hershey font at 0.45).
LABEL_SIZE = 14


def draw_faces(
    image: np.ndarray, faces: Sequence[LabelledFace], colours: dict[str, tuple[int, int, int]]
) -> None:
    """Draw each face's box and ``name (decided by)`` onto an RGB frame, in place.

    Names are drawn with :func:`mxn.media.text.draw_text`, so "Zoë" or "Łukasz" reads as written.
    """
    for face in faces:
        colour = colours.setdefault(face.name, _PALETTE[len(colours) % len(_PALETTE)])
        x1, y1, x2, y2 = face.box
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), colour, 2)
        text = f"{face.name} ({face.decided_by})"
        top = max(y1 - label_size(text, LABEL_SIZE)[1], 0)
        draw_text(image, text, (x1, top), LABEL_SIZE, (0, 0, 0), background=colour)


def annotate_video(
    source: str | os.PathLike, faces: Sequence[LabelledFace], out: str | os.PathLike, hold_frames: int = 1
) -> Path:
    """A copy of ``source`` with every face's box and name drawn (mp4v; OpenCV cannot write H.264).

    Boxes stay on screen for ``hold_frames`` frames from the frame they were
    found in, so a video labelled every Nth frame shows them throughout.
    """
    from mxn.media.video import iter_frames, probe

    info = probe(source)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix or '.mp4'}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), info.fps, (info.width, info.height))
    if not writer.isOpened():
        raise OSError(f"{out}: OpenCV cannot write an mp4v video there")
    by_frame: dict[int, list[LabelledFace]] = defaultdict(list)
    for face in faces:
        for k in range(max(hold_frames, 1)):
            by_frame[face.frame + k].append(face)
    colours: dict[str, tuple[int, int, int]] = {}
    try:
        for frame in iter_frames(source):
            image = np.ascontiguousarray(frame.image)
            draw_faces(image, by_frame.get(frame.index, []), colours)
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    os.replace(tmp, out)
    return out
