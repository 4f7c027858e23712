"""What a label query returns: frames and time segments per video, each with its evidence."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mxn.media.segments import DEFAULT_MAX_GAP, merge_segments


@dataclass(frozen=True)
class Hit:
    """One object in the answer and why it is there."""

    frame: int
    time: float
    box: tuple[int, int, int, int]
    object_id: int
    cluster_id: int | None  # None in ``all`` mode (no index used)
    decided_by: str  # "exit 0" .. "exit 4", "gt-cnn"


@dataclass
class VideoAnswer:
    """The answer within one video."""

    video_id: int
    name: str
    path: str
    fps: float
    hits: list[Hit] = field(default_factory=list)
    max_gap: float = DEFAULT_MAX_GAP

    @property
    def frames(self) -> list[int]:
        return sorted({h.frame for h in self.hits})

    @property
    def segments(self) -> list[tuple[float, float]]:
        return merge_segments({h.time for h in self.hits}, self.max_gap)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "name": self.name,
            "path": self.path,
            "fps": self.fps,
            "frames": self.frames,
            "segments": [list(s) for s in self.segments],
            "hits": [asdict(h) | {"box": list(h.box)} for h in self.hits],
        }


@dataclass
class QueryStats:
    """The cost of a query.

    ``miss_rate`` is the share of candidates no exit decided, so the GT-CNN
    had to (the dissertation's "miss rate" of the early exits); ``gt_calls``
    and ``mxn_calls`` count crops run through each network *by this query*
    (cached verdicts cost none).
    """

    candidates: int = 0
    accepted: int = 0
    rejected: int = 0
    decided_per_exit: dict[int, int] = field(default_factory=dict)
    decided_by_index: int = 0  # rejected by the index's stored score, before any exit
    gt_decided: int = 0
    gt_calls: int = 0
    mxn_calls: int = 0
    cached: int = 0
    objects_checked: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0

    @property
    def miss_rate(self) -> float | None:
        return self.gt_decided / self.candidates if self.candidates else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["decided_per_exit"] = {str(k): v for k, v in sorted(self.decided_per_exit.items())}
        data["miss_rate"] = self.miss_rate
        return data


@dataclass
class QueryResult:
    """The answer to ``label`` over some videos and a time range, in one ``mode``."""

    label: str
    mode: str
    index_mode: str
    start: float | None
    end: float | None
    videos: list[VideoAnswer]
    stats: QueryStats
    accuracy: dict[str, Any] | None = None  # precision / recall against the gt-all index, when there is one
    warnings: list[str] = field(default_factory=list)  # what the user should know about how it was answered

    @property
    def hits(self) -> int:
        return sum(len(v.hits) for v in self.videos)

    @property
    def frame_keys(self) -> set[tuple[int, int]]:
        """(video id, frame) of every frame in the answer."""
        return {(v.video_id, f) for v in self.videos for f in v.frames}

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "mode": self.mode,
            "index_mode": self.index_mode,
            "from": self.start,
            "to": self.end,
            "frames": sum(len(v.frames) for v in self.videos),
            "stats": self.stats.to_dict(),
            "accuracy": self.accuracy,
            "warnings": self.warnings,
            "videos": [v.to_dict() for v in self.videos],
        }

    def write(self, path: str | os.PathLike) -> Path:
        """JSON (``.json``) or CSV (``.csv``: one row per hit) by the file's extension."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".json", ".csv"):
            raise ValueError(
                f"{path}: the answer is written as .json or .csv, not {suffix or 'no extension'}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".json":
            path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
            return path
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["label", "video", "frame", "time", "x1", "y1", "x2", "y2", "object_id",
                             "cluster_id", "decided_by"])  # fmt: skip
            for video in self.videos:
                for h in video.hits:
                    writer.writerow([self.label, video.name, h.frame, f"{h.time:.3f}", *h.box, h.object_id,
                                     "" if h.cluster_id is None else h.cluster_id, h.decided_by])  # fmt: skip
        return path
