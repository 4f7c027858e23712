"""The faces report: who is on screen when, and how often a cheap exit named a face instead of the oracle.

Everything comes from the labelled rows (:class:`mxn.facerec.pipeline.MovieResult`)
through the same functions the command line prints with
(:mod:`mxn.facerec.outputs`: ``person_timeline``, ``screen_time``,
``summarize``), so the page and ``mxn faces`` never disagree.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mxn.facerec.outputs import LabelledFace, person_timeline, screen_time

from . import page as p

if TYPE_CHECKING:  # the report reads it; importing mxn.facerec.pipeline would load dlib and FAISS
    from mxn.facerec.pipeline import MovieResult
from .charts import bar_chart, timeline_chart

#: At most this many videos get a timeline of their own (a movie in many files).
TIMELINES = 8


def _deciders(num_exits: int) -> list[str]:
    return [f"exit {i}" for i in range(num_exits)] + ["oracle"]


def _summary(result: MovieResult, summary: dict, truth_accuracy: float | None) -> p.Markup:
    figs = [
        p.count("faces", "faces labelled", summary["faces"]),
        p.count("people", "people", len(summary["people"])),
        p.count("exit_hits", "named by an MXN exit", sum(summary["hits_per_exit"])),
        p.count("oracle_calls", "oracle calls", summary["oracle_calls"]),
        p.pct("oracle_rate", "oracle rate", summary["oracle_rate"]),
    ]
    if truth_accuracy is not None:
        figs.append(p.pct("truth_accuracy", "accuracy vs the truth", truth_accuracy))
    figs += [
        p.seconds("seconds", "seconds", result.seconds),
        p.seconds("detection_seconds", "detection seconds", result.detection_seconds),
        p.seconds("recognition_seconds", "recognition seconds", result.recognition_seconds),
    ]
    return p.figures(figs)


def _timelines(faces: Sequence[LabelledFace]) -> list[p.Markup]:
    """One chart per video (people as rows): a movie in several files restarts its clock in each."""
    timeline = person_timeline(faces)
    videos = sorted({v for per_video in timeline.values() for v in per_video})
    if not videos:
        return [p.note("no face was found")]
    charts = []
    for video in videos[:TIMELINES]:
        rows = [(name, per_video.get(video, [])) for name, per_video in timeline.items()]
        charts.append(timeline_chart(rows, f"Who is on screen when: {video}"))
    if len(videos) > TIMELINES:
        charts.append(p.note(f"{len(videos) - TIMELINES} more videos are not drawn"))
    return charts


def _people(faces: Sequence[LabelledFace]) -> p.Markup:
    timeline = person_timeline(faces)
    seconds = screen_time(timeline)
    counts = Counter(f.name for f in faces)
    by_exit = Counter(f.name for f in faces if f.exit is not None)
    rows = []
    for name, per_video in timeline.items():
        segments = [s for segs in per_video.values() for s in segs]
        shown = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in segments[:6]) + (" ..." if len(segments) > 6 else "")
        rows.append(
            [
                name,
                counts[name],
                p.fmt_pct(by_exit[name] / counts[name]),
                len(segments),
                f"{seconds[name]:.1f}",
                shown,
            ]
        )
    headers = ["person", "faces", "named by exits", "segments", "seconds on screen", "when (s)"]
    return p.table(headers, rows, id="people-table")


def _exits(summary: dict, num_exits: int) -> list[p.Markup]:
    names = _deciders(num_exits)
    counts = [*summary["hits_per_exit"], summary["oracle_calls"]]
    n = summary["faces"]
    shares = [c / n if n else 0.0 for c in counts]
    chart = bar_chart(
        names,
        {"share of faces (%)": [round(100 * s, 1) for s in shares]},
        "Who named the faces: MXN exits vs the oracle",
        "% of faces",
    )
    figs = [p.pct(f"share.{name.replace(' ', '')}", name, s) for name, s in zip(names, shares, strict=True)]
    table = p.table(
        ["decided by", "faces", "share"],
        [[name, c, p.fmt_pct(s)] for name, c, s in zip(names, counts, shares, strict=True)],
        id="exits-table",
    )
    return [p.figures(figs), chart, table]


def _videos(result: MovieResult) -> list[p.Markup]:
    rows = [
        [
            v.get("video", "?"),
            "already labelled" if v.get("skipped") else "labelled",
            v.get("frames"),
            *(p.fmt_seconds(v.get(key)) for key in ("seconds", "detect_s", "recognise_s")),
        ]
        for v in result.videos
    ]
    rows += [[f["video"], f"FAILED: {f['error']}", None, None, None, None] for f in result.failed]
    headers = ["video", "status", "frames", "seconds", "detection", "recognition"]
    return [p.table(headers, rows, id="videos-table")]


def write_faces_report(
    path: str | os.PathLike,
    result: MovieResult,
    *,
    truth_accuracy: float | None = None,
    images: Sequence[str | os.PathLike] = (),
) -> Path:
    """Write the report of a labelled movie.

    Sections (stable ids): ``summary`` (counts, oracle rate, seconds;
    ``truth_accuracy`` when the caller measured it against a truth file),
    ``timeline`` (per person, per video), ``people`` (screen time),
    ``exits`` (share of faces decided per exit vs the oracle), ``videos`` and,
    when ``images`` (PNG files, e.g. ``mxn tune faces --plot``) are given, ``plots``.
    """
    summary = result.summary()
    people, videos = len(summary["people"]), len(result.videos)
    page = p.Page(
        f"Faces: {result.movie}", f"{summary['faces']} faces of {people} people in {videos} video(s)"
    )
    page.section("summary", "Summary").add(_summary(result, summary, truth_accuracy))
    page.section("timeline", "Who is on screen when").add(*_timelines(result.faces))
    page.section("people", "People").add(_people(result.faces) if result.faces else p.note("nobody"))
    page.section("exits", "MXN exits vs the oracle").add(*_exits(summary, result.num_exits))
    page.section("videos", "Videos").add(*_videos(result))
    if images:
        page.section("plots", "Plots").add(*p.extra_images(images))
    return page.write(path)
