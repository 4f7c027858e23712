"""The demo's front page: the whole story on one screen, with a link to each job's own report.

It takes the demo's summary as plain data (:meth:`mxn.cli.demo.DemoSummary.to_dict`,
the same dict ``mxn demo --json`` writes), so the page and the JSON always
show the same numbers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import page as p


def _href(target: str | os.PathLike, base: Path) -> str:
    """``target`` relative to the page's folder, so the out folder can be moved or zipped whole."""
    return Path(os.path.relpath(Path(target).resolve(), base.resolve())).as_posix()


def _maybe_link(target: str | None, label: str, base: Path) -> p.Markup | str:
    return p.link(_href(target, base), label) if target else "-"


def _headline(summary: Mapping[str, Any]) -> p.Markup:
    mxn_runs = [r for r in summary["ingest"] if r["mode"] == "mxn"]
    faces = summary.get("faces") or {}
    figs = [
        p.seconds("seconds", "seconds the story took", summary["seconds"]),
        p.count("objects", "objects found", sum(r["objects"] for r in mxn_runs)),
        p.count("clusters", "clusters (mxn index)", sum(r["clusters"] for r in mxn_runs)),
        p.count("queries", "label queries", len(summary["queries"])),
        p.count("faces", "faces labelled", faces.get("faces")),
        p.pct("faces_accuracy", "faces right (vs truth)", faces.get("truth_accuracy")),
    ]
    return p.figures(figs)


def _ingest(summary: Mapping[str, Any], base: Path) -> list[p.Markup]:
    rows = [
        [
            r["video"],
            r["mode"],
            r["status"],
            r["frames"],
            r["objects"],
            r["indexing"],
            r["clusters"],
            p.fmt_seconds(r["seconds"]),
        ]
        for r in summary["ingest"]
    ]
    headers = ["video", "index", "status", "frames", "objects", "#indexing", "clusters", "seconds"]
    report = summary["files"].get("ingest report")
    return [p.table(headers, rows, id="ingest-table"), p.tag("p", _maybe_link(report, "ingest report", base))]


def _queries(summary: Mapping[str, Any], base: Path) -> list[p.Markup]:
    rows, figs = [], []
    for q in summary["queries"]:
        rows.append(
            [
                _maybe_link(q.get("report"), q["label"], base),
                q["candidates"],
                q["decided_by_exits"],
                q["gt_calls"],
                q["cached"],
                q["frames"],
                q["segments"],
                p.fmt_pct(q["precision"]),
                p.fmt_pct(q["recall"]),
                p.fmt_seconds(q["seconds"]),
            ]
        )
        key = f"query.{q['label']}."
        figs += [
            p.pct(key + "precision", f"{q['label']}: precision", q["precision"]),
            p.pct(key + "recall", f"{q['label']}: recall", q["recall"]),
        ]
    headers = [
        "label",
        "candidates",
        "decided by exits",
        "GT-CNN calls",
        "cached",
        "frames",
        "segments",
        "precision",
        "recall",
        "seconds",
    ]
    notes = p.note(
        "mxn mode with the query model's bundled thresholds; precision and recall are frame-level "
        "against the gt-all index of the same clip"
    )
    return [p.table(headers, rows, id="queries-table"), p.figures(figs), notes]


def _tuning(tuning: Mapping[str, Any] | None, images: Sequence[str | os.PathLike]) -> list[p.Markup]:
    if not tuning:
        return [p.note("not tuned (too few candidates)")]
    figs = [
        p.count("tuning.candidates", "candidates sampled", tuning["candidates"]),
        p.pct("tuning.precision", "held-out precision", tuning["precision"]),
        p.pct("tuning.recall", "held-out recall", tuning["recall"]),
        p.pct("tuning.gt_call_rate", "GT-CNN calls (held out)", tuning["gt_call_rate"]),
    ]
    text = (
        "What `mxn tune query` finds on this index: per-exit thresholds fitted on half of the candidates "
        f"for {100 * tuning['target_precision']:g}% precision, measured on the other half."
    )
    return [p.tag("p", text), p.figures(figs), *p.extra_images(images)]


def _faces(faces: Mapping[str, Any] | None, base: Path) -> list[p.Markup]:
    if not faces:
        return [p.note("no movie was labelled")]
    rates = faces["hit_rate_per_exit"]
    figs = [
        p.count("faces.faces", "faces", faces["faces"]),
        p.count("faces.people", "people", len(faces["people"])),
        p.count("faces.oracle_calls", "oracle calls", faces["oracle_calls"]),
        *(p.pct(f"faces.exit{i}", f"named at exit {i}", r) for i, r in enumerate(rates)),
        p.pct("faces.truth_accuracy", "right vs the movie's truth", faces.get("truth_accuracy")),
    ]
    return [p.figures(figs), p.tag("p", _maybe_link(faces.get("report"), "faces report", base))]


def _files(files: Mapping[str, str], base: Path) -> p.Markup:
    rows = [[what, _maybe_link(path, _href(path, base), base)] for what, path in files.items()]
    return p.table(["what", "where"], rows, id="files-table")


def write_overview(
    path: str | os.PathLike, summary: Mapping[str, Any], images: Sequence[str | os.PathLike] = ()
) -> Path:
    """Write the demo's front page from its summary dict; ``images`` (PNG files) go under the tuning.

    Sections (stable ids): ``summary``, ``ingest``, ``queries``, ``tuning``, ``faces``, ``files``.
    """
    path = Path(path)
    base = path.parent
    clip, plan = summary["clip"], summary["plan"]
    subtitle = (
        f"{clip['seconds']:g} s of the {clip['preset']} camera at {clip['size'][0]}x{clip['size'][1]}, "
        f"{clip['fps']:g} fps; movie preset {plan['movie_preset']}; seed {plan['seed']}"
        + ("; quick (reduced) form" if plan["quick"] else "")
    )
    page = p.Page("mxn demo", subtitle)
    page.section("summary", "The story in numbers").add(_headline(summary))
    page.section("ingest", "1. Ingest: objects and clusters").add(*_ingest(summary, base))
    page.section("queries", "2. Label queries: MXN exits vs the GT-CNN").add(*_queries(summary, base))
    page.section("tuning", "3. Tuning the query thresholds").add(*_tuning(summary.get("tuning"), images))
    page.section("faces", "4. Faces: who appears when").add(*_faces(summary.get("faces"), base))
    page.section("files", "Where everything is").add(_files(summary["files"], base))
    stages = [[name, p.fmt_seconds(s)] for name, s in summary["stages"].items()]
    page.section("time", "Time per stage").add(p.table(["stage", "seconds"], stages, id="stages-table"))
    return page.write(path)
