"""``mxn ingest`` (index videos into a store) and ``mxn crops`` (a training set cut from an index).

Both are thin layers over :mod:`mxn.ingest` through :mod:`mxn.api`; their
options and defaults are :func:`mxn.api.ingest`'s and :func:`mxn.api.index_crops`'.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import click

from mxn import api
from mxn.ingest.config import MODES
from mxn.query.settings import INDEX_MODES

from .common import (
    db_option,
    friendly_errors,
    job_option,
    print_table,
    quiet_option,
    resumable,
    warn,
    write_json_file,
)

#: An option of ``mxn ingest``: its default is :func:`mxn.api.ingest`'s (IngestConfig's).
option = partial(job_option, api.ingest)

EXAMPLES_INGEST = """
Examples:

  mxn ingest traffic.mp4                        # SQLite file mxn.db, default model and settings

  mxn ingest cams/*.mp4 --json stats.json --html ingest.html     # figures, and a report to read

  mxn ingest traffic.mp4 --mode focus --exits 2 --topk 3 --db focus.db

  mxn ingest traffic.mp4 --mode gt-all --db truth.db   # the reference index queries are judged against

  mxn ingest cams/*.mp4 --workers 4 --db postgresql+psycopg://me@127.0.0.1/traffic   # a local Dask cluster

  mxn ingest cams/*.mp4 --scheduler tcp://10.0.0.5:8786 --db postgresql+psycopg://me@dbhost/traffic

Long videos are split into ranges of --range-frames frames; with --workers or
--scheduler the ranges run in parallel. The index is the same whichever way it
runs (the same --range-frames gives the same ranges).

A killed ingest resumes where it stopped when the same command runs again.
A video already in the store (same content) is skipped unless --force.
"""


@click.command(epilog=EXAMPLES_INGEST)
@click.argument("videos", nargs=-1, required=True, type=click.Path(dir_okay=False))
@db_option()
@option(
    "--model",
    type=click.Path(dir_okay=False),
    help="Model file (default: the bundled ingest model, or ground-truth CNN for gt-all).",
)
@option("--mode", type=click.Choice(MODES), show_default=True)
@option("--exits", help="Exits whose labels are aggregated, e.g. 0,1,2 (0 = first).")
@option("--topk", type=int, show_default=True, help="Labels per exit (k'; Focus's K).")
@option("--cluster-exit", type=int, help="Exit whose features are clustered (default: deepest).")
@option(
    "--cluster-threshold",
    type=float,
    show_default=True,
    help="Squared distance of unit features under which an object joins a cluster.",
)
@option("--max-clusters", type=int, show_default=True, help="Open clusters per label.")
@option("--stride", type=int, show_default=True, help="Process every N-th frame.")
@option("--warmup", type=int, show_default=True, help="Frames that warm the background model.")
@option("--min-area", type=int, show_default=True, help="Smallest object mask, in pixels.")
@option("--skip-static", is_flag=True, help="Skip frames where no block changed (DeepMon's test).")
@option("--chunk-frames", type=int, show_default=True, help="Frames per committed chunk.")
@option(
    "--range-frames",
    type=int,
    show_default=True,
    help="Frames per range, the unit of parallel work (part of the index: keep it to resume).",
)
@option(
    "--crop-size",
    type=int,
    show_default=True,
    help="Side of the representative crops kept for queries (match the GT-CNN's input).",
)
@option("--workers", type=int, help="Ingest on a local Dask cluster of N processes.")
@option("--scheduler", help="Ingest on an existing Dask cluster (tcp://HOST:PORT).")
@option("--force", is_flag=True, help="Re-ingest videos already in the store.")
@quiet_option()
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the statistics as JSON.")
@option("--html", type=click.Path(dir_okay=False), help="Write an HTML report of the run.")
@friendly_errors
def ingest(
    videos: tuple[str, ...], quiet: bool, json_out: str | None, html: str | None, **options: Any
) -> None:
    """Index VIDEO files: moving objects, their aggregated top-k labels, per-label clusters."""
    with resumable():
        results = api.ingest(videos, progress=not quiet, html=html, **options)
    _print_results(results)
    if html and Path(html).is_file():
        click.echo(f"wrote {Path(html)}")
    write_json_file(json_out, results.to_dict())
    if results.failed:
        raise click.ClickException(f"{len(results.failed)} of {len(results)} videos failed (see above)")


HEADERS = ["video", "frames", "skipped", "objects", "#indexing", "clusters", "seconds", "frames/s", "status"]


def _status(r) -> str:
    """The status column: done, or whose figures a skipped video shows (an earlier run's)."""
    if r.status != "skipped":
        return "done"
    other = ", OTHER SETTINGS" if r.settings_differ else ""
    return f"already indexed (figures of run {r.run_id}{other}; --force to redo)"


def _print_results(results) -> None:
    rows = []
    for r in results:
        if r.status == "failed":
            click.echo(f"FAILED {r.video}: {r.error}", err=True)
            continue
        s = r.stats
        note = _status(r)
        if r.resumed_from:
            note += f", resumed at frame {r.resumed_from}"
        if s.get("ranges", 1) > 1:
            note += f", {s['ranges']} ranges ({s.get('clusters_merged', 0)} clusters merged)"
        # on workers the ranges' seconds overlap: the wall time is what a user waited
        seconds = s.get("wall_s", s.get("seconds", 0.0))
        rows.append(
            [
                r.video,
                s.get("frames", 0),
                s.get("frames_skipped", 0),
                s.get("objects", 0),
                s.get("indexing", 0),
                s.get("clusters", 0),
                f"{seconds:.1f}",
                f"{s.get('frames', 0) / max(seconds, 1e-9):.1f}",
                note,
            ]
        )
    if rows:
        print_table(HEADERS, rows)
    from mxn.ingest.config import describe_diff

    for r in results:
        for warning in r.warnings:
            warn(f"{r.video}: {warning}")
        if r.settings_differ:
            click.echo(
                f"{r.video}: indexed by run {r.run_id} with other settings: "
                f"{describe_diff(r.settings_differ)}; the figures above are that run's; "
                "--force re-indexes it with these settings"
            )


#: An option of ``mxn crops``: its default is :func:`mxn.api.index_crops`'.
crops_option = partial(job_option, api.index_crops)

EXAMPLES_CROPS = """
Examples:

  mxn crops --out data/cam1-crops                      # the index in mxn.db, the bundled GT-CNN

  mxn crops --db cams.db --video cam1.mp4 --every 2 --out data/cam1-crops

  mxn train data/cam1-crops --init query.mxn --loss focal --out cam1-query.mxn   # specialise

The crops are the representatives ingest kept (one per object), labelled by
the ground-truth CNN's top-1: the objects queries really ask about. Training
on them is Focus's specialisation; the splits are cut by --block-seconds of
video, so one object's frames stay in one split.
"""


@click.command(epilog=EXAMPLES_CROPS)
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="New folder to write.")
@db_option()
@crops_option("--gt", type=click.Path(dir_okay=False), help="Ground-truth CNN (default: bundled).")
@crops_option("--index", type=click.Choice(INDEX_MODES), show_default=True)
@crops_option("--video", help="Only this video (name, id or hash prefix).")
@crops_option("--every", type=int, show_default=True, help="Keep every N-th object.")
@crops_option("--block-seconds", type=float, show_default=True, help="Video time that goes to one split.")
@crops_option("--seed", type=int, show_default=True, help="Which blocks go to which split.")
@quiet_option()
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the manifest as JSON too.")
@friendly_errors
def crops(out: str, quiet: bool, json_out: str | None, **options: Any) -> None:
    """Cut a training set from an index: its crops under the ground-truth CNN's labels."""
    manifest = api.index_crops(out, progress=not quiet, **options)
    labels = manifest["classes"]
    rows = [[split, *(counts.get(c, 0) for c in labels), sum(counts.values())]
            for split, counts in manifest["counts"].items()]  # fmt: skip
    print_table(["split", *labels, "all"], rows)
    click.echo(f"wrote {Path(out)} ({sum(r[-1] for r in rows)} crops at {manifest['crop_size']} px)")
    write_json_file(json_out, manifest)
