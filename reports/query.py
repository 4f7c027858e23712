"""The query report: the answer over time, the frames it found with their boxes, and what it cost.

What a user wants to see of "where is a bus?": *when* (a timeline of the
merged segments per video, and where the gt-all reference is known, the
reference's segments beside them), *what* (the contact sheet of
:mod:`mxn.query.sheet`, boxes drawn), and *at what price*: which candidates the
MXN's exits decided and how many went to the expensive GT-CNN, which is the
whole point of the MXN-gated query (docs/ARCHITECTURE.md section 5).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mxn.media.segments import merge_segments
from mxn.media.video import VideoError
from mxn.query.sheet import sheet_image

from . import page as p
from .charts import bar_chart, timeline_chart

if TYPE_CHECKING:
    from mxn.query.result import QueryResult
    from mxn.storage.store import Store

#: Frames on the contact sheet.
SHEET_FRAMES = 24
#: Segments listed per video in the segments table.
SEGMENTS_LISTED = 40


def _span(result: QueryResult, store: Store | None) -> tuple[float, float] | None:
    """The time axis: the whole length of the answer's videos when the store says it, else None (auto)."""
    if store is None:
        return None
    lengths = {v.id: v.duration_s for v in store.videos()}
    longest = max((lengths.get(v.video_id, 0.0) for v in result.videos), default=0.0)
    low = result.start or 0.0
    high = result.end if result.end is not None else longest
    return (low, high) if high > low else None


def reference_segments(store: Store, result: QueryResult) -> dict[int, list[tuple[float, float]]]:
    """Per answered video, the segments where the gt-all index has the label (within the query's range)."""
    out = {}
    for v in result.videos:
        objects = store.objects(v.video_id, result.start, result.end, label=result.label, mode="gt-all")
        out[v.video_id] = merge_segments({o.time for o in objects}, v.max_gap)
    return out


def _timeline(result: QueryResult, store: Store | None) -> list[p.Markup]:
    if not result.videos:
        return [p.note(f"no frame shows {result.label!r}")]
    rows: list[tuple[str, list[tuple[float, float]]]] = []
    colours: list[str] = []
    reference = reference_segments(store, result) if store is not None and result.accuracy else {}
    for v in result.videos:
        rows.append((f"{v.name}: answer", v.segments))
        colours.append("#1f77b4")
        if v.video_id in reference:
            rows.append((f"{v.name}: gt-all", reference[v.video_id]))
            colours.append("#7f7f7f")
    chart = timeline_chart(rows, f"When {result.label!r} is on screen", _span(result, store), colours)
    parts = [chart]
    if reference:
        parts.append(p.note("grey: the reference, where the GT-CNN run on every object (gt-all) saw it"))
    return parts


def _segments_table(result: QueryResult) -> p.Markup:
    rows = []
    for v in result.videos:
        segments = v.segments
        shown = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in segments[:SEGMENTS_LISTED])
        if len(segments) > SEGMENTS_LISTED:
            shown += f" ... ({len(segments) - SEGMENTS_LISTED} more)"
        rows.append([v.name, len(v.hits), len(v.frames), len(segments), shown])
    return p.table(["video", "objects", "frames", "segments", "seconds"], rows, id="segments-table")


def _sheet(result: QueryResult, sheet: str | os.PathLike | None) -> p.Markup:
    """The contact sheet: the PNG already written for this result, or drawn now from the videos."""
    alt = f"contact sheet of {result.label!r}"
    if sheet is not None:
        return p.photo_img(p.decode_image(Path(sheet).read_bytes(), str(sheet)), alt)
    try:
        return p.photo_img(sheet_image(result, SHEET_FRAMES), alt)
    except VideoError as err:
        return p.note(f"the contact sheet needs the indexed videos: {err}")


def _cost(result: QueryResult) -> list[p.Markup]:
    s = result.stats
    if result.mode == "all":
        figs = [
            p.count("objects_checked", "objects the GT-CNN checked", s.objects_checked),
            p.count("accepted", "showing the label", s.accepted),
            p.count("gt_calls", "GT-CNN calls", s.gt_calls),
        ]
        chart = []
    else:
        by_exits = sum(s.decided_per_exit.values())
        figs = [
            p.count("candidates", "candidate clusters", s.candidates),
            p.count("accepted", "accepted", s.accepted),
            p.count("rejected", "rejected", s.rejected),
            p.count("index_decided", "rejected by the index score", s.decided_by_index),
            p.count("exit_decided", "decided by MXN exits", by_exits),
            p.count("gt_decided", "decided by the GT-CNN", s.gt_decided),
            p.pct("miss_rate", "miss rate (to the GT-CNN)", s.miss_rate),
            p.count("gt_calls", "GT-CNN calls now", s.gt_calls),
            p.count("mxn_calls", "MXN calls now", s.mxn_calls),
            p.count("cached", "cached verdicts", s.cached),
        ]
        exits = range(max(s.decided_per_exit, default=-1) + 1)
        index = ["index score"] if s.decided_by_index else []
        names = index + [f"exit {i}" for i in exits] + ["GT-CNN"]
        decided = (
            [s.decided_by_index] * len(index) + [s.decided_per_exit.get(i, 0) for i in exits] + [s.gt_decided]
        )
        chart = [bar_chart(names, {"candidates decided": decided}, "Who decided the candidates", "clusters")]
    figs += [
        p.seconds("seconds", "query seconds", s.seconds),
        p.seconds("model_seconds", "seconds in CNNs", s.model_seconds),
    ]
    deciders = Counter(h.decided_by for v in result.videos for h in v.hits)
    table = p.table(["decided by", "objects in the answer"], sorted(deciders.items()), id="deciders-table")
    return [p.figures(figs), *chart, table]


def _accuracy(result: QueryResult) -> list[p.Markup]:
    a = result.accuracy
    if not a:
        return [p.note("no gt-all index of these videos: ingest them with --mode gt-all to judge the answer")]
    figs = [
        p.pct("precision", "precision", a["precision"]),
        p.pct("recall", "recall", a["recall"]),
        p.count("answer_frames", "frames in the answer", a["answer_frames"]),
        p.count("truth_frames", "frames in the reference", a["truth_frames"]),
        p.count("correct_frames", "frames right", a["correct_frames"]),
        p.count("videos_judged", "videos judged", a["videos_judged"]),
    ]
    return [p.figures(figs), p.note("frame-level, against the gt-all index (Focus's measure)")]


def write_query_report(
    path: str | os.PathLike,
    result: QueryResult,
    store: Store | None = None,
    *,
    sheet: str | os.PathLike | None = None,
    images: Sequence[str | os.PathLike] = (),
) -> Path:
    """Write the report of one label query.

    Sections (stable ids): ``summary``, ``timeline`` (merged segments per
    video; with ``store`` and a judged answer, the gt-all reference beside
    them), ``contact-sheet`` (``sheet``, a PNG already written by
    :func:`mxn.query.sheet.contact_sheet`, or drawn now from the indexed videos),
    ``cost`` (candidates, decided per exit, GT-CNN calls, cache, seconds),
    ``accuracy`` (precision and recall against gt-all, when known),
    ``segments`` and, when ``images`` (PNG files) are given, ``plots``.
    """
    where = (
        "all times"
        if result.start is None and result.end is None
        else (
            f"from {result.start or 0:.1f} s to {'the end' if result.end is None else f'{result.end:.1f} s'}"
        )
    )
    page = p.Page(f"Query: {result.label}", f"{result.mode} mode on the {result.index_mode} index, {where}")
    frames = sum(len(v.frames) for v in result.videos)
    segments = sum(len(v.segments) for v in result.videos)
    page.section("summary", "Summary").add(
        p.figures(
            [
                p.text("label", "label", result.label),
                p.text("mode", "mode", result.mode),
                p.count("frames", "frames in the answer", frames),
                p.count("segments", "segments", segments),
                p.count("hits", "objects in the answer", result.hits),
                p.count("videos", "videos with the label", len(result.videos)),
            ]
        )
    )
    page.section("timeline", "Timeline").add(*_timeline(result, store))
    page.section("contact-sheet", "Contact sheet").add(_sheet(result, sheet))
    page.section("cost", "Cost: MXN exits vs the GT-CNN").add(*_cost(result))
    page.section("accuracy", "Precision and recall").add(*_accuracy(result))
    page.section("segments", "Segments").add(
        _segments_table(result) if result.videos else p.note("no segments")
    )
    if images:
        page.section("plots", "Plots").add(*p.extra_images(images))
    return page.write(path)
