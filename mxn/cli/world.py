"""The synthetic traffic world's commands: ``world presets``, ``world video``, ``world crops``."""

from __future__ import annotations

from functools import partial
from typing import Any

import click

from mxn import api
from mxn.datasets.world.settings import SOURCES

from .common import friendly_errors, job_option, print_table, write_json_file
from .models import print_difficulty

#: Options whose defaults are those of :func:`mxn.api.render_traffic_video` and :func:`mxn.api.render_crops`.
video_option = partial(job_option, api.render_traffic_video)
crops_option = partial(job_option, api.render_crops)

EXAMPLES_WORLD = """
Examples:

  mxn world presets

  mxn world video --preset downtown --seconds 60 -o cams/downtown.mp4

  mxn world crops --out data/world-crops --seconds 600 --size 128
"""

EXAMPLES_WORLD_PRESETS = """
Examples:

  mxn world presets

  mxn world video --preset night --seconds 30 -o cams/night.mp4
"""

EXAMPLES_WORLD_VIDEO = """
Examples:

  mxn world video --preset highway --seconds 600 -o cams/highway.mp4

  mxn world video -p night --seconds 20 --size 320x180 --fps 15 -o night.mp4

  mxn world video --seed 3 --seconds 10 -o cams/d3.mp4 --json clip.json
"""

EXAMPLES_WORLD_CROPS = """
Examples:

  mxn world crops --out data/world-crops --seconds 600 --size 128

  mxn world crops --out data/quick --seconds 60 --presets downtown --size 32

  mxn world crops --out data/blobs --source blobs --size 128 --every 10 --max-per-track 10
"""


@click.group(epilog=EXAMPLES_WORLD)
def world() -> None:
    """The synthetic traffic world: camera presets, clips with truth, training crops."""


@world.command("presets", epilog=EXAMPLES_WORLD_PRESETS)
def world_presets() -> None:
    """List the camera presets and the classes each one shows."""
    from mxn.datasets.world.presets import PRESETS

    for preset in PRESETS.values():
        click.echo(f"{preset.name:11s} {preset.description}")
        click.echo(f"{'':11s} classes: {', '.join(preset.classes)}")


@world.command("video", epilog=EXAMPLES_WORLD_VIDEO)
@video_option("--preset", "-p", show_default=True, help="Camera preset (mxn world presets).")
@video_option("--seconds", type=float, show_default=True)
@video_option("--seed", type=int, show_default=True)
@video_option("--size", show_default=True, help="Frame size WIDTHxHEIGHT.")
@video_option("--fps", type=float, show_default=True)
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Video to write (.mp4).")
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False), help="Write the files, frames and speed as JSON."
)
@friendly_errors
def world_video(
    preset: str, seconds: float, seed: int, size: str, fps: float, out: str, json_out: str | None
) -> None:
    """Render a traffic clip and its per-frame truth (NAME.truth.jsonl beside it)."""
    from dataclasses import asdict

    clip = api.render_traffic_video(out, preset, seconds, seed=seed, size=size, fps=fps)
    realtime = clip.render_fps / fps
    click.echo(
        f"wrote {clip.video} and {clip.truth}: {clip.frames} frames in {clip.seconds:.1f} s "
        f"({clip.render_fps:.0f} frames/s, {realtime:.1f}x real time)"
    )
    write_json_file(json_out, asdict(clip))


@world.command("crops", epilog=EXAMPLES_WORLD_CROPS)
@click.option(
    "--out", "-o", required=True, type=click.Path(file_okay=False), help="Data-set folder to write."
)
@crops_option("--size", type=int, show_default=True, help="Crop side in pixels.")
@crops_option("--seconds", type=float, help="Simulated seconds per preset for train (others: 30%).")
@crops_option("--presets", help="Comma-separated presets (default: all).")
@crops_option("--seed", type=int, show_default=True)
@crops_option(
    "--source",
    type=click.Choice(SOURCES),
    show_default=True,
    help="Boxes from the world's truth (jittered), or the background-subtraction blobs ingest finds.",
)
@crops_option("--every", type=int, show_default=True, help="Frames between two crops of a track.")
@crops_option("--max-per-track", type=int, show_default=True, help="Crops per track at most.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the manifest as JSON.")
@friendly_errors
def world_crops(out: str, json_out: str | None, **options: Any) -> None:
    """Cut a class-per-folder crops data set (train/val/calibration/test) from rendered worlds."""
    manifest = api.render_crops(out, **options)
    rows = [
        [c, *(manifest["counts"].get(s, {}).get(c, 0) for s in manifest["counts"])]
        for c in manifest["classes"]
    ]
    print_table(["class", *manifest["counts"]], rows)
    click.echo(f"wrote {out}/ (manifest.json lists counts, seeds and settings)")
    from mxn.defaults import MODEL_DIR

    if (
        "test" in manifest["counts"]
        and (MODEL_DIR / "ingest.mxn").exists()
        and (MODEL_DIR / "gt.mxn").exists()
    ):
        print_difficulty(out)
    write_json_file(json_out, manifest)
