"""``mxn faces``, ``mxn tune faces`` and ``mxn movie``: who appears when in a movie (over facerec/)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import click

from mxn import api
from mxn.datasets.movies.settings import MOVIE_PRESETS
from mxn.facerec.settings import DEFAULT_ALPHA, DETECTORS

from .common import (
    DB_HELP_FACES,
    db_option,
    friendly_errors,
    job_option,
    print_table,
    quiet_option,
    resumable,
    write_json_file,
)

#: Options whose defaults are those of :func:`mxn.api.label_faces`, ``tune_faces``, ``make_movie``
#: and ``train_faces``.
option = partial(job_option, api.label_faces)
tune_option = partial(job_option, api.tune_faces)
movie_option = partial(job_option, api.make_movie)
train_option = partial(job_option, api.train_faces)


def _fraction(rate: float) -> str:
    """A rate such as 1/15 as the help says it: ``1/15``."""
    return f"1/{1 / rate:g}"


EXAMPLES_FACES = """
Examples:

  mxn movie --preset short -o movies/short.mp4 --gallery cast/     # a movie of real faces, and its cast

  mxn faces movies/short.mp4 --gallery cast/ --out faces.json --srt faces.srt --annotate annotated.mp4

  mxn faces part1.mp4 part2.mp4 --movie my-film --gallery cast/     # one movie in several files

  mxn faces part3.mp4 --movie my-film --gallery cast/ --html my-film.html   # extend it; a report

  mxn faces movie.mp4 --thresholds face-thresholds.json --alpha 0.05 --db postgresql+psycopg://me@host/films

Faces the gallery (one folder of photos per person: cast/Alice/*.jpg) does not know get
stable names unknown-1, unknown-2, ... The labelled faces stay in the database: running the
same command again answers from it and runs no model (--force labels again).
"""

EXAMPLES_TUNE = """
Examples:

  mxn movie --preset short --seed 7 -o calib/calib.mp4 --gallery calib/cast

  mxn tune faces calib/calib.mp4 --gallery calib/cast --out face-thresholds.json --plot alpha.png

Each VIDEO needs its truth beside it (NAME.truth.jsonl, as `mxn movie` writes).
"""


@click.command(epilog=EXAMPLES_FACES)
@click.argument("movies", nargs=-1, required=True, type=click.Path())
@option("--gallery", type=click.Path(file_okay=False), help="Folder of photos per person (cast/NAME/*.jpg).")
@option("--model", type=click.Path(dir_okay=False), help="Face MXN (default: the bundled one).")
@option("--thresholds", type=click.Path(dir_okay=False), help="From `mxn tune faces`.")
@option(
    "--alpha",
    type=float,
    help=f"Running-average rate (default {_fraction(DEFAULT_ALPHA)}, or the thresholds file's).",
)
@option("--movie", help="Movie name in the database (default: the first file's name).")
@db_option(DB_HELP_FACES)
@option("--detector", type=click.Choice(DETECTORS), show_default=True)
@option("--stride", type=int, show_default=True, help="Label every N-th frame.")
@option("--min-face", type=int, show_default=True, help="Smallest face side, pixels.")
@option("--chunk-frames", type=int, show_default=True, help="Frames per committed chunk.")
@option("--out", type=click.Path(dir_okay=False), help="Face rows and timeline: .json or .csv.")
@option("--srt", type=click.Path(dir_okay=False), help="Subtitles naming who is on screen.")
@option("--annotate", type=click.Path(dir_okay=False), help="Annotated copy of the (first) video, mp4.")
@option("--force", is_flag=True, help="Label videos the movie already holds again.")
@quiet_option()
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the summary as JSON.")
@option("--html", type=click.Path(dir_okay=False), help="Write an HTML report: who appears when.")
@friendly_errors
def faces(movies: tuple[str, ...], quiet: bool, json_out: str | None, **options: Any) -> None:
    """Label who appears when in MOVIES (one movie, in order): per-face rows, timeline, subtitles."""
    from mxn.facerec.outputs import person_timeline

    failures: list[str] = []

    def failed(path: str, err: Exception) -> None:
        failures.append(failure_line(path, err))
        if len(movies) > 1:  # said as it happens; a lone video's failure is the command's one error line
            click.echo(f"FAILED {failures[-1]}", err=True)

    with resumable(), echo_warnings():
        result = api.label_faces(movies, progress=not quiet, on_error=failed, **options)
    stored = bool(result.videos or result.faces)  # else every video failed: no figures, no files
    if stored:
        _print_summary(result.summary(), person_timeline(result.faces))
        for name in ("out", "srt", "annotate", "html"):
            if options[name]:
                click.echo(f"wrote {Path(options[name])}")
    write_json_file(json_out, result.to_dict())
    if len(failures) == 1 and len(movies) == 1:
        raise click.ClickException(failures[0])
    if failures:
        raise click.ClickException(f"{len(failures)} of {len(movies)} videos failed (see above)")


def failure_line(path: str, err: Exception) -> str:
    """``PATH: why``, the path said once: the library's video errors already start with it (or its name)."""
    text = str(err)
    return text if text.startswith((str(path), Path(path).name)) else f"{path}: {text}"


def movie_line(summary: dict[str, Any]) -> str:
    """The movie's totals; the time taken only when a video was labelled (not just read back from SQL)."""
    line = (
        f"movie {summary['movie']!r}: {summary['faces']} faces, {len(summary['people'])} people; "
        f"oracle calls {summary['oracle_calls']} ({100 * summary['oracle_rate']:.1f}%)"
    )
    if not any(not video.get("skipped") for video in summary["videos"]):
        return line + "; answered from the database, no model run"
    return line + (
        f"; {summary['seconds']:.1f} s (detection {summary['detection_seconds']:.1f} s, "
        f"recognition {summary['recognition_seconds']:.1f} s)"
    )


@contextmanager
def echo_warnings(*loggers: str) -> Iterator[None]:
    """Print the library's warnings (a gallery's skipped photos, ...) as plain lines on stderr.

    The library logs them (:mod:`logging`), so an API caller decides where
    they go; the command line shows each as one line, whatever handlers
    other packages set up on the root logger.
    """

    class Echo(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            click.echo(record.getMessage(), err=True)

    handler = Echo(logging.WARNING)
    named = [logging.getLogger(name) for name in loggers or ("mxn.facerec", "mxn.images")]
    saved = [(log, log.propagate) for log in named]
    for log in named:
        log.addHandler(handler)
        log.propagate = False
    try:
        yield
    finally:
        for log, propagate in saved:
            log.removeHandler(handler)
            log.propagate = propagate


def _print_summary(summary: dict[str, Any], timeline: dict) -> None:
    for video in summary["videos"]:
        note = "already labelled (--force to redo)" if video.get("skipped") else "done"
        click.echo(f"{video['video']}: {note}")
    n = summary["faces"]
    click.echo("\n" + movie_line(summary))
    if n:
        rates = ", ".join(f"exit {i} {100 * r:.1f}%" for i, r in enumerate(summary["hit_rate_per_exit"]))
        click.echo(f"hit rate per exit: {rates}\n")
    rows = []
    for name, videos in timeline.items():
        segments = [s for segs in videos.values() for s in segs]
        shown = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in segments[:4]) + (" ..." if len(segments) > 4 else "")
        rows.append([name, len(segments), f"{sum(b - a for a, b in segments):.1f}", shown])
    if rows:
        print_table(["person", "segments", "seconds", "when (s)"], rows)


@click.command("faces", epilog=EXAMPLES_TUNE)
@click.argument("videos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@tune_option("--gallery", type=click.Path(file_okay=False), help="The calibration movies' cast folder.")
@tune_option("--model", type=click.Path(dir_okay=False), help="Face MXN (default: the bundled one).")
@tune_option("--target-accuracy", type=float, show_default=True)
@tune_option("--alpha", type=float, show_default=_fraction(DEFAULT_ALPHA), help="Rate used while tuning.")
@tune_option("--detector", type=click.Choice(DETECTORS), show_default=True)
@tune_option("--stride", type=int, show_default=True)
@tune_option("--out", type=click.Path(dir_okay=False), show_default=True)
@tune_option("--plot", type=click.Path(dir_okay=False), help="Hit rate and accuracy against 1/alpha, PNG.")
@tune_option(
    "--into-model",
    type=click.Path(dir_okay=False),
    help="Also write a copy of the face model with these thresholds in its card (used without --thresholds).",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False))
@friendly_errors
def tune_faces(
    videos: tuple[str, ...],
    target_accuracy: float,
    out: str,
    plot: str | None,
    into_model: str | None,
    json_out: str | None,
    **options: Any,
) -> None:
    """Per-exit distance thresholds reaching a target accuracy on VIDEOS with known truth; 1/alpha sweep."""
    with echo_warnings():
        tuning = api.tune_faces(
            videos, target_accuracy=target_accuracy, out=out, plot=plot, into_model=into_model, **options
        )
    thresholds, result = tuning.thresholds.thresholds, tuning.replay
    click.echo(
        f"{tuning.faces} calibration faces; the oracle alone is {100 * tuning.oracle_accuracy:.1f}% accurate"
    )
    print_table(
        ["exit", "threshold", "hit rate"],
        [
            [i, "-" if t is None else f"{t:.3f}", f"{100 * h:.1f}%"]
            for i, (t, h) in enumerate(zip(thresholds, result.hit_rate_per_exit, strict=True))
        ],
    )
    click.echo(
        f"accuracy {100 * result.accuracy:.2f}% (target {100 * target_accuracy:.1f}%), "
        f"oracle calls {100 * result.oracle_rate:.1f}%"
    )
    click.echo("\n1/alpha sweep:")
    print_table(
        ["1/alpha", "hit rate", "accuracy"],
        [
            [f"{r['inv_alpha']:g}", f"{100 * r['hit_rate']:.1f}%", f"{100 * r['accuracy']:.2f}%"]
            for r in tuning.sweep
        ],
    )
    click.echo(f"wrote {Path(out)}")
    if plot:
        click.echo(f"wrote {Path(plot)}")
    if into_model:
        click.echo(f"wrote {Path(into_model)} (thresholds in its card)")
    write_json_file(json_out, tuning.to_dict())


EXAMPLES_MOVIE = """
Examples:

  mxn movie -o movies/short.mp4 --gallery cast/                  # 20 s of real faces, 320x240

  mxn movie --preset feature --seed 3 -o movies/feature.mp4       # 90 s at 640x360

  mxn movie -o calib/calib.mp4 --seed 7 --gallery calib/cast --leave-out messi   # a stranger too
"""


@click.command(epilog=EXAMPLES_MOVIE)
@movie_option("--preset", type=click.Choice(MOVIE_PRESETS), show_default=True)
@movie_option("--seed", type=int, show_default=True)
@movie_option("--seconds", type=float, help="Length (default: the preset's).")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False), required=True, help="NAME.mp4 (+ NAME.truth.jsonl)."
)
@movie_option(
    "--gallery", type=click.Path(file_okay=False), help="Also write the cast's gallery folder here."
)
@movie_option("--leave-out", multiple=True, help="A cast member the gallery leaves out (a stranger).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write what was written as JSON.")
@friendly_errors
def movie(out: str, gallery: str | None, json_out: str | None, **options: Any) -> None:
    """Compose an evaluation movie from real faces that ship in packages, with its truth (docs/DATA.md)."""
    made = api.make_movie(out, gallery=gallery, **options)
    click.echo(f"wrote {made.video} ({made.frames} frames, {made.shots} shots) and {made.truth}")
    if gallery:
        photos = made.photos
        click.echo(f"wrote {gallery}: {sum(len(v) for v in photos.values())} photos of {len(photos)} people")
    write_json_file(json_out, made.to_dict())


EXAMPLES_TRAIN_FACES = """
Examples:

  mxn train faces movie.mp4 cast/ --out face.mxn          # distil dlib's embedder on this movie's faces

  mxn train faces photos/ --out face.mxn --identities     # photos/NAME/*.jpg: identity classification

The face model then serves `mxn faces --model face.mxn` (tune its thresholds with `mxn tune faces`).
"""


@click.command("faces", epilog=EXAMPLES_TRAIN_FACES)
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--out", "-o", required=True, type=click.Path(dir_okay=False), help="Face model to write (.mxn)."
)
@train_option(
    "--identities", is_flag=True, help="SOURCES is one class-per-folder face data set: classify people."
)
@train_option("--width", type=float, show_default=True, help="Width multiplier.")
@train_option("--epochs", type=int, show_default=True, help="Most epochs (early stopping may end sooner).")
@train_option("--stride", type=int, show_default=True, help="Faces from every N-th video frame.")
@train_option("--max-faces", type=int, show_default=True)
@train_option("--detector", type=click.Choice(DETECTORS), show_default=True)
@train_option("--seed", type=int, show_default=True)
@train_option("--source", help="What the card records as the training data (default: SOURCES).")
@quiet_option()
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False), help="Write the training report as JSON."
)
@friendly_errors
def train_faces(
    sources: tuple[str, ...], out: str, quiet: bool, json_out: str | None, **options: Any
) -> None:
    """Train a face MXN (MobileNetV1, embedding exits) on the faces of SOURCES: videos, photos, folders."""
    trained = api.train_faces(sources, out, progress=not quiet, log=click.echo, **options)
    click.echo(f"wrote {trained.path}")
    for key in ("heldout_cosine", "heldout_accuracy"):
        if key in trained.report:
            values = trained.report[key]
            click.echo(f"{key.replace('_', ' ')} per exit: " + ", ".join(f"{v:.3f}" for v in values))
    write_json_file(json_out, trained.to_dict())
