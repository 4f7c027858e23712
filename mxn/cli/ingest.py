"""``mxn ingest`` (index videos into a store) and ``mxn crops`` (a training set cut from an index).

Both are thin layers over :mod:`ingest` through :mod:`mxn.api`.
"""

from __future__ import annotations

from pathlib import Path

import click

from .common import friendly_errors, print_table, resumable, warn, write_json_file

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
@click.option("--db", default=None, help="Database URL (default: sqlite:///mxn.db, or $MXN_DB).")
@click.option(
    "--model",
    "model_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Model file (default: the bundled ingest model, or ground-truth CNN for gt-all).",
)
@click.option("--mode", type=click.Choice(["mxn", "focus", "gt-all"]), default="mxn", show_default=True)
@click.option("--exits", default=None, help="Exits whose labels are aggregated, e.g. 0,1,2 (0 = first).")
@click.option("--topk", type=int, default=2, show_default=True, help="Labels per exit (k'; Focus's K).")
@click.option(
    "--cluster-exit", type=int, default=None, help="Exit whose features are clustered (default: deepest)."
)
@click.option(
    "--cluster-threshold",
    type=float,
    default=0.1,
    show_default=True,
    help="Squared distance of unit features under which an object joins a cluster.",
)
@click.option("--max-clusters", type=int, default=100, show_default=True, help="Open clusters per label.")
@click.option("--stride", type=int, default=1, show_default=True, help="Process every N-th frame.")
@click.option(
    "--warmup", type=int, default=45, show_default=True, help="Frames that warm the background model."
)
@click.option("--min-area", type=int, default=60, show_default=True, help="Smallest object mask, in pixels.")
@click.option("--skip-static", is_flag=True, help="Skip frames where no block changed (DeepMon's test).")
@click.option("--chunk-frames", type=int, default=900, show_default=True, help="Frames per committed chunk.")
@click.option(
    "--range-frames",
    type=int,
    default=9000,
    show_default=True,
    help="Frames per range, the unit of parallel work (part of the index: keep it to resume).",
)
@click.option(
    "--crop-size",
    type=int,
    default=128,
    show_default=True,
    help="Side of the representative crops kept for queries (match the GT-CNN's input).",
)
@click.option("--workers", type=int, default=None, help="Ingest on a local Dask cluster of N processes.")
@click.option("--scheduler", default=None, help="Ingest on an existing Dask cluster (tcp://HOST:PORT).")
@click.option("--force", is_flag=True, help="Re-ingest videos already in the store.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the statistics as JSON.")
@click.option("--html", type=click.Path(dir_okay=False), help="Write an HTML report of the run.")
@friendly_errors
def ingest(
    videos: tuple[str, ...],
    db: str | None,
    model_path: str | None,
    mode: str,
    exits: str | None,
    topk: int,
    cluster_exit: int | None,
    cluster_threshold: float,
    max_clusters: int,
    stride: int,
    warmup: int,
    min_area: int,
    skip_static: bool,
    chunk_frames: int,
    range_frames: int,
    crop_size: int,
    workers: int | None,
    scheduler: str | None,
    force: bool,
    quiet: bool,
    json_out: str | None,
    html: str | None,
) -> None:
    """Index VIDEO files: moving objects, their aggregated top-k labels, per-label clusters."""
    from mxn import api

    with resumable():
        results = api.ingest(
            videos,
            db=db,
            model=model_path,
            mode=mode,
            exits=exits,
            topk=topk,
            cluster_exit=cluster_exit,
            cluster_threshold=cluster_threshold,
            max_clusters=max_clusters,
            stride=stride,
            warmup=warmup,
            min_area=min_area,
            skip_static=skip_static,
            chunk_frames=chunk_frames,
            range_frames=range_frames,
            crop_size=crop_size,
            workers=workers,
            scheduler=scheduler,
            force=force,
            progress=not quiet,
            html=html,
        )
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
@click.option("--db", default=None, help="Database URL (default: sqlite:///mxn.db, or $MXN_DB).")
@click.option(
    "--gt", default=None, type=click.Path(dir_okay=False), help="Ground-truth CNN (default: bundled)."
)
@click.option("--index", type=click.Choice(["mxn", "focus"]), default="mxn", show_default=True)
@click.option("--video", default=None, help="Only this video (name, id or hash prefix).")
@click.option("--every", type=int, default=1, show_default=True, help="Keep every N-th object.")
@click.option(
    "--block-seconds", type=float, default=10.0, show_default=True, help="Video time that goes to one split."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Which blocks go to which split.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the manifest as JSON too.")
@friendly_errors
def crops(
    out: str,
    db: str | None,
    gt: str | None,
    index: str,
    video: str | None,
    every: int,
    block_seconds: float,
    seed: int,
    quiet: bool,
    json_out: str | None,
) -> None:
    """Cut a training set from an index: its crops under the ground-truth CNN's labels."""
    from mxn import api

    manifest = api.index_crops(
        out, db=db, gt=gt, index=index, video=video, every=every, block_seconds=block_seconds, seed=seed,
        progress=not quiet,
    )  # fmt: skip
    labels = manifest["classes"]
    rows = [[split, *(counts.get(c, 0) for c in labels), sum(counts.values())]
            for split, counts in manifest["counts"].items()]  # fmt: skip
    print_table(["split", *labels, "all"], rows)
    click.echo(f"wrote {Path(out)} ({sum(r[-1] for r in rows)} crops at {manifest['crop_size']} px)")
    write_json_file(json_out, manifest)
