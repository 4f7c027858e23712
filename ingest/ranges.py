"""Splitting a video into ranges of frames, and adding up what the ranges did.

A range is the unit of work of an ingest run: it decodes its frames (plus
the warm-up frames before it, which overlap the previous range and warm
its own background model), commits chunk by chunk and resumes on its own.
Ranges start on chunk boundaries, and every chunk warms a fresh background
model, so a range finds exactly the objects that an uninterrupted pass over
the video finds in those frames: nothing at a seam is lost or found twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mxn.storage.records import RangeRecord

#: Counters a range accumulates (over resumes too); a run's are their sums.
COUNTERS = ("frames", "frames_skipped", "objects", "indexing", "confident")
#: Seconds per stage; a run's are their sums.
TIMERS = ("decode_s", "extract_s", "model_s", "cluster_s", "store_s")


def plan_ranges(frame_count: int, range_frames: int) -> list[tuple[int, int | None]]:
    """``[start, end)`` ranges of ``range_frames`` frames; the last one runs to the end of the video.

    The container's ``frame_count`` may be a little off, so the last range is
    open-ended rather than trusting it; a video without a count is one range.
    """
    if range_frames < 1:
        raise ValueError(f"range_frames must be >= 1, got {range_frames}")
    starts = list(range(0, max(int(frame_count), 1), range_frames))
    return [(start, start + range_frames) for start in starts[:-1]] + [(starts[-1], None)]


def run_stats(ranges: Iterable[RangeRecord]) -> dict[str, Any]:
    """A run's statistics from its ranges': summed counters and stage seconds, frames per second."""
    ranges = list(ranges)
    stats: dict[str, Any] = {key: sum(int(r.stats.get(key, 0)) for r in ranges) for key in COUNTERS}
    stats |= {key: sum(float(r.stats.get(key, 0.0)) for r in ranges) for key in (*TIMERS, "seconds")}
    stats["frames_per_s"] = stats["frames"] / max(stats["seconds"], 1e-9)
    stats["ranges"] = len(ranges)
    stats["range_attempts"] = sum(r.attempts for r in ranges)
    return stats
