"""Time segments: frames close in time merged into ``(start, end)`` spans.

One rule serves every answer that says *when*: a label query's hits
(:mod:`mxn.query.result`) and a person's appearances in a movie
(:mod:`mxn.facerec.outputs`).
"""

from __future__ import annotations

from collections.abc import Iterable

#: Frames closer than this (seconds) belong to one segment.
DEFAULT_MAX_GAP = 1.0


def merge_segments(times: Iterable[float], max_gap: float = DEFAULT_MAX_GAP) -> list[tuple[float, float]]:
    """Sorted times merged into (start, end) segments wherever neighbours are <= ``max_gap`` apart."""
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    segments: list[tuple[float, float]] = []
    for t in sorted(float(t) for t in times):
        if segments and t - segments[-1][1] <= max_gap:
            segments[-1] = (segments[-1][0], t)
        else:
            segments.append((t, t))
    return segments
