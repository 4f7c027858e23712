"""The ingest report: per indexed video, what was found (objects, labels, clusters) and what it cost.

The figures come from the ingest results (what the run measured); the
labels and clusters are read back from the store, restricted to each
result's own run, so the page shows the index exactly as queries will see
it. Clusters are shown by their representative crops (the PNG bytes ingest
stored, embedded as they are), only the largest few per label: a long
video has thousands, and the report must stay a small file.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mxn.storage.crop_codec import CropFormatError, decode_crop
from mxn.storage.records import ClusterRecord, RunRecord, VideoRecord

from . import page as p
from .charts import bar_chart

if TYPE_CHECKING:  # the report reads them; importing mxn.ingest.pipeline would load TensorFlow
    from mxn.ingest.pipeline import IngestResult
    from mxn.storage.store import Store

#: Representative crops shown per label and run (the largest clusters).
CLUSTERS_PER_LABEL = 8


@dataclass
class RunIndex:
    """One finished run's index as read back: per label its objects and its clusters (largest first)."""

    run: RunRecord
    video: VideoRecord | None
    objects: Counter[str]
    clusters: dict[str, list[ClusterRecord]]

    @property
    def labels(self) -> list[str]:
        """Labels with objects, most objects first."""
        return sorted(self.objects, key=lambda label: (-self.objects[label], label))


def read_run(store: Store, run_id: int) -> RunIndex:
    """Objects per label and the clusters of run ``run_id`` (that run only: its video may have others)."""
    run = store.get_run(run_id)
    video = next((v for v in store.videos() if v.id == run.video_id), None)
    objects: Counter[str] = Counter()
    for o in store.objects(run.video_id, mode=run.mode):
        if o.run_id == run.id:
            objects.update(o.labels.keys())  # the labels, not their scores
    clusters = {}
    for label in objects:
        mine = [c for c in store.clusters(label, run.video_id, mode=run.mode) if c.run_id == run.id]
        clusters[label] = sorted(mine, key=lambda c: (-c.size, c.id))
    return RunIndex(run, video, objects, clusters)


def _title(result: IngestResult, index: RunIndex | None) -> str:
    mode = index.run.mode if index is not None else "?"
    return f"{result.video} ({mode} index)"


def _seconds(stats: dict) -> float:
    """What a user waited: the wall time on workers (their ranges overlap), else the run's seconds."""
    return float(stats.get("wall_s", stats.get("seconds", 0.0)))


def _summary_row(result: IngestResult, index: RunIndex | None) -> list:
    s = result.stats
    note = {"done": "indexed", "skipped": "already indexed", "failed": f"FAILED: {result.error}"}
    frames, secs = int(s.get("frames", 0)), _seconds(s)
    return [
        result.video,
        index.run.mode if index is not None else "-",
        note.get(result.status, result.status),
        frames,
        int(s.get("objects", 0)),
        int(s.get("indexing", 0)),
        int(s.get("clusters", 0)),
        int(s.get("ranges", 1)),
        p.fmt_seconds(secs),
        f"{frames / secs:.1f}" if secs > 0 else "-",
    ]


def _run_figures(k: int, result: IngestResult, index: RunIndex) -> p.Markup:
    s = result.stats
    key = f"run{k}."
    figs = [
        p.count(key + "frames", "frames", s.get("frames", 0)),
        p.count(key + "objects", "objects", s.get("objects", 0)),
        p.count(key + "indexing", "#indexing (object, label)", s.get("indexing", 0)),
        p.count(key + "clusters", "clusters", s.get("clusters", 0)),
        p.count(key + "labels", "labels", len(index.objects)),
        p.count(key + "ranges", "ranges", s.get("ranges", 1)),
        p.seconds(key + "seconds", "seconds", _seconds(s)),
    ]
    return p.figures(figs)


def _stage_table(stats: dict) -> p.Markup:
    stages = [
        ("decode", "decode_s"),
        ("background subtraction", "extract_s"),
        ("MXN", "model_s"),
        ("clustering", "cluster_s"),
        ("SQL", "store_s"),
    ]
    return p.table(["stage", "seconds"], [[name, p.fmt_seconds(stats.get(key))] for name, key in stages])


def _labels_block(k: int, index: RunIndex) -> list[p.Markup]:
    labels = index.labels
    if not labels:
        return [p.note("nothing was indexed")]
    objects = [index.objects[label] for label in labels]
    clusters = [len(index.clusters[label]) for label in labels]
    chart = bar_chart(
        labels, {"objects": objects, "clusters": clusters}, "Objects and clusters per label", "count"
    )
    rows = [
        [
            label,
            index.objects[label],
            len(index.clusters[label]),
            index.clusters[label][0].size if index.clusters[label] else 0,
        ]
        for label in labels
    ]
    return [chart, p.table(["label", "objects", "clusters", "largest cluster"], rows, id=f"labels-table-{k}")]


def _thumb(cluster: ClusterRecord) -> p.Markup:
    caption = f"{cluster.size} obj, {cluster.first_time:.1f}-{cluster.last_time:.1f} s"
    try:
        crop = decode_crop(cluster.representative_crop)
    except CropFormatError as err:
        raise ValueError(f"cluster {cluster.id}'s representative crop: {err}") from None
    image = p.photo_img(
        crop, f"cluster {cluster.id} ({cluster.label})", class_=None, title=f"cluster {cluster.id}"
    )
    return p.tag("figure", image, p.tag("figcaption", caption))


def _clusters_block(index: RunIndex, per_label: int) -> list[p.Markup]:
    out: list[p.Markup] = []
    for label in index.labels:
        clusters = index.clusters[label]
        shown = clusters[:per_label]
        out.append(p.tag("h4", f"{label}: the largest {len(shown)} of {len(clusters)} clusters"))
        out.append(p.tag("div", *(_thumb(c) for c in shown), class_="thumbs"))
    return out or [p.note("no clusters")]


def write_ingest_report(
    path: str | os.PathLike,
    store: Store,
    results: Sequence[IngestResult],
    *,
    clusters_per_label: int = CLUSTERS_PER_LABEL,
    images: Sequence[str | os.PathLike] = (),
) -> Path:
    """Write the ingest report of ``results`` (as :func:`mxn.ingest.pipeline.ingest_videos` returns them).

    Sections (stable ids): ``summary`` (one row per result), ``videos`` (per
    run its figures and stage seconds), ``labels`` (objects and clusters per
    label, a bar chart), ``clusters`` (the largest ``clusters_per_label``
    clusters of each label by their representative crops) and, when
    ``images`` (PNG files) are given, ``plots``. Failed results appear in the
    summary with their error.
    """
    indexes = [
        read_run(store, r.run_id) if r.status != "failed" and r.run_id is not None else None for r in results
    ]
    done = [(k, r, ix) for k, (r, ix) in enumerate(zip(results, indexes, strict=True)) if ix is not None]
    page = p.Page("Ingest report", f"{len(results)} video run(s) into {store.url}")
    headers = [
        "video",
        "index",
        "status",
        "frames",
        "objects",
        "#indexing",
        "clusters",
        "ranges",
        "seconds",
        "frames/s",
    ]
    page.section("summary", "Summary").add(
        p.table(headers, [_summary_row(r, ix) for r, ix in zip(results, indexes, strict=True)])
    )
    videos = page.section("videos", "Videos")
    labels = page.section("labels", "Labels")
    clusters = page.section("clusters", "Clusters")
    for k, result, index in done:
        title = _title(result, index)
        video = index.video
        where = (
            f"{video.path}: {video.width}x{video.height}, {video.fps:g} fps, {video.duration_s:.1f} s"
            if video
            else ""
        )
        videos.add(
            p.tag("h3", title, id=f"video-{k}"),
            p.tag("p", where),
            _run_figures(k, result, index),
            _stage_table(result.stats),
        )
        labels.add(p.tag("h3", title, id=f"labels-{k}"), *_labels_block(k, index))
        clusters.add(p.tag("h3", title, id=f"clusters-{k}"), *_clusters_block(index, clusters_per_label))
    if not done:
        for section in (videos, labels, clusters):
            section.add(p.note("no video was indexed"))
    if images:
        page.section("plots", "Plots").add(*p.extra_images(images))
    return page.write(path)
