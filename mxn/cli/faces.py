"""``mxn faces``, ``mxn tune faces`` and ``mxn movie``: who appears when in a movie (over facerec/)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from .common import friendly_errors, print_table, resumable, write_json_file

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
@click.option(
    "--gallery", type=click.Path(file_okay=False), help="Folder of photos per person (cast/NAME/*.jpg)."
)
@click.option(
    "--model", "model_path", type=click.Path(dir_okay=False), help="Face MXN (default: the bundled one)."
)
@click.option(
    "--thresholds", "thresholds_path", type=click.Path(dir_okay=False), help="From `mxn tune faces`."
)
@click.option("--alpha", type=float, help="Running-average rate (default 1/15, or the thresholds file's).")
@click.option("--movie", "movie_name", help="Movie name in the database (default: the first file's name).")
@click.option("--db", help="Database URL (default: $MXN_DB or sqlite:///mxn.db).")
@click.option("--detector", type=click.Choice(["hog", "haar", "mtcnn"]), default="hog", show_default=True)
@click.option("--stride", type=int, default=1, show_default=True, help="Label every N-th frame.")
@click.option("--min-face", type=int, default=20, show_default=True, help="Smallest face side, pixels.")
@click.option("--chunk-frames", type=int, default=300, show_default=True, help="Frames per committed chunk.")
@click.option("--out", type=click.Path(dir_okay=False), help="Face rows and timeline: .json or .csv.")
@click.option("--srt", type=click.Path(dir_okay=False), help="Subtitles naming who is on screen.")
@click.option("--annotate", type=click.Path(dir_okay=False), help="Annotated copy of the (first) video, mp4.")
@click.option("--force", is_flag=True, help="Label videos the movie already holds again.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the summary as JSON.")
@click.option("--html", type=click.Path(dir_okay=False), help="Write an HTML report: who appears when.")
@friendly_errors
def faces(
    movies: tuple[str, ...],
    gallery: str | None,
    model_path: str | None,
    thresholds_path: str | None,
    alpha: float | None,
    movie_name: str | None,
    db: str | None,
    detector: str,
    stride: int,
    min_face: int,
    chunk_frames: int,
    out: str | None,
    srt: str | None,
    annotate: str | None,
    force: bool,
    quiet: bool,
    json_out: str | None,
    html: str | None,
) -> None:
    """Label who appears when in MOVIES (one movie, in order): per-face rows, timeline, subtitles."""
    from mxn import api
    from mxn.facerec.outputs import person_timeline

    failures: list[str] = []

    def failed(path: str, err: Exception) -> None:
        failures.append(failure_line(path, err))
        if len(movies) > 1:  # said as it happens; a lone video's failure is the command's one error line
            click.echo(f"FAILED {failures[-1]}", err=True)

    with resumable(), echo_warnings():
        result = api.label_faces(
            movies,
            gallery=gallery,
            model=model_path,
            thresholds=thresholds_path,
            alpha=alpha,
            movie=movie_name,
            db=db,
            detector=detector,
            stride=stride,
            min_face=min_face,
            chunk_frames=chunk_frames,
            out=out,
            srt=srt,
            annotate=annotate,
            force=force,
            progress=not quiet,
            on_error=failed,
            html=html,
        )
    stored = bool(result.videos or result.faces)  # else every video failed: no figures, no files
    if stored:
        _print_summary(result.summary(), person_timeline(result.faces))
        for path in (out, srt, annotate, html):
            if path:
                click.echo(f"wrote {Path(path)}")
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
@click.option("--gallery", type=click.Path(file_okay=False), help="The calibration movies' cast folder.")
@click.option(
    "--model", "model_path", type=click.Path(dir_okay=False), help="Face MXN (default: the bundled one)."
)
@click.option("--target-accuracy", type=float, default=0.99, show_default=True)
@click.option("--alpha", type=float, default=1 / 15, show_default="1/15", help="Rate used while tuning.")
@click.option("--detector", type=click.Choice(["hog", "haar", "mtcnn"]), default="hog", show_default=True)
@click.option("--stride", type=int, default=1, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default="face-thresholds.json", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), help="Hit rate and accuracy against 1/alpha, PNG.")
@click.option(
    "--into-model",
    type=click.Path(dir_okay=False),
    help="Also write a copy of the face model with these thresholds in its card (used without --thresholds).",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False))
@friendly_errors
def tune_faces(
    videos: tuple[str, ...],
    gallery: str | None,
    model_path: str | None,
    target_accuracy: float,
    alpha: float,
    detector: str,
    stride: int,
    out: str,
    plot: str | None,
    into_model: str | None,
    json_out: str | None,
) -> None:
    """Per-exit distance thresholds reaching a target accuracy on VIDEOS with known truth; 1/alpha sweep."""
    from mxn import api

    with echo_warnings():
        tuning = api.tune_faces(
            videos,
            gallery=gallery,
            model=model_path,
            target_accuracy=target_accuracy,
            alpha=alpha,
            detector=detector,
            stride=stride,
            out=out,
            plot=plot,
            into_model=into_model,
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
@click.option("--preset", type=click.Choice(["tiny", "short", "feature"]), default="short", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--seconds", type=float, help="Length (default: the preset's).")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False), required=True, help="NAME.mp4 (+ NAME.truth.jsonl)."
)
@click.option(
    "--gallery", type=click.Path(file_okay=False), help="Also write the cast's gallery folder here."
)
@click.option("--leave-out", multiple=True, help="A cast member the gallery leaves out (a stranger).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write what was written as JSON.")
@friendly_errors
def movie(
    preset: str,
    seed: int,
    seconds: float | None,
    out: str,
    gallery: str | None,
    leave_out: tuple,
    json_out: str | None,
) -> None:
    """Compose an evaluation movie from real faces that ship in packages, with its truth (docs/DATA.md)."""
    from mxn import api

    made = api.make_movie(
        out, preset=preset, seed=seed, seconds=seconds, gallery=gallery, leave_out=leave_out
    )
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
@click.option(
    "--identities", is_flag=True, help="SOURCES is one class-per-folder face data set: classify people."
)
@click.option("--width", type=float, default=0.25, show_default=True, help="Width multiplier.")
@click.option(
    "--epochs", type=int, default=30, show_default=True, help="Most epochs (early stopping may end sooner)."
)
@click.option("--stride", type=int, default=5, show_default=True, help="Faces from every N-th video frame.")
@click.option("--max-faces", type=int, default=20000, show_default=True)
@click.option("--detector", type=click.Choice(["hog", "haar", "mtcnn"]), default="hog", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--source", "source_note", help="What the card records as the training data (default: SOURCES)."
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False), help="Write the training report as JSON."
)
@friendly_errors
def train_faces(
    sources: tuple[str, ...],
    out: str,
    identities: bool,
    width: float,
    epochs: int,
    stride: int,
    max_faces: int,
    detector: str,
    seed: int,
    source_note: str | None,
    quiet: bool,
    json_out: str | None,
) -> None:
    """Train a face MXN (MobileNetV1, embedding exits) on the faces of SOURCES: videos, photos, folders."""
    from mxn import api

    trained = api.train_faces(
        sources,
        out,
        identities=identities,
        width=width,
        epochs=epochs,
        stride=stride,
        max_faces=max_faces,
        detector=detector,
        seed=seed,
        source=source_note,
        progress=not quiet,
        log=click.echo,
    )
    click.echo(f"wrote {trained.path}")
    for key in ("heldout_cosine", "heldout_accuracy"):
        if key in trained.report:
            values = trained.report[key]
            click.echo(f"{key.replace('_', ' ')} per exit: " + ", ".join(f"{v:.3f}" for v in values))
    write_json_file(json_out, trained.to_dict())
