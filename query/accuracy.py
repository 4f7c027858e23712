"""How right an answer is: frame-level precision and recall against the gt-all index.

As Focus measures it: the reference answer to "where is <label>?" is the set
of frames in which the ground-truth CNN, run on every object at ingest
(``mxn ingest --mode gt-all``), labelled some object <label>. Frames, not
objects, because a user asks for frames; and the two indexes come from the
same object extraction, so they sample the same frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mxn.storage.store import Store

if TYPE_CHECKING:
    from .result import QueryResult


def precision_recall(answer: set, truth: set) -> tuple[float, float]:
    """Precision and recall of a set against the truth (1.0 where the denominator is empty)."""
    hit = len(answer & truth)
    precision = hit / len(answer) if answer else 1.0
    recall = hit / len(truth) if truth else 1.0
    return precision, recall


def frame_figures(answer: set, truth: set) -> dict[str, Any]:
    """Precision, recall and the frame counts behind them: how an answer is reported everywhere."""
    precision, recall = precision_recall(answer, truth)
    return {
        "precision": precision,
        "recall": recall,
        "answer_frames": len(answer),
        "truth_frames": len(truth),
        "correct_frames": len(answer & truth),
    }


def truth_frames(
    store: Store, label: str, video_ids: set[int], start: float | None, end: float | None
) -> set[tuple[int, int]]:
    """(video id, frame) of every frame of these videos where the gt-all index has ``label``."""
    out: set[tuple[int, int]] = set()
    for video_id in video_ids:
        objects = store.objects(video_id, start, end, label=label, mode="gt-all")
        out |= {(o.video_id, o.frame) for o in objects}
    return out


def judge(store: Store, result: QueryResult, video_id: int | None) -> dict[str, Any] | None:
    """Precision and recall of ``result`` on the videos that have a gt-all index (None: no such video)."""
    judged = {r.video_id for r in store.runs(video_id, status="done") if r.mode == "gt-all"}
    if not judged:
        return None
    truth = truth_frames(store, result.label, judged, result.start, result.end)
    answer = {key for key in result.frame_keys if key[0] in judged}
    return frame_figures(answer, truth) | {"videos_judged": len(judged)}
