"""The face jobs: ``mxn movie`` (a movie with truth), ``mxn faces`` (who appears when), ``mxn tune faces``,
``mxn train faces``.

Their defaults are the stage's own: a labelled movie's settings are
:class:`mxn.facerec.settings.FaceConfig`'s fields, the running averages' rate,
the detectors and the face model's training defaults are
:mod:`mxn.facerec.settings`', the target accuracy :mod:`mxn.targets`'. Those
modules import nothing heavy; the stage's working modules (NumPy, OpenCV,
dlib, TensorFlow) load inside each job.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mxn.facerec.settings import DEFAULT_ALPHA, FACE_WIDTH, TRAINING_STRIDE, FaceConfig
from mxn.targets import TARGET_ACCURACY

from .options import (
    Log,
    OptionError,
    PathLike,
    as_paths,
    check_suffix,
    database_url,
    existing,
    load_tensorflow,
    open_store,
    say,
)

if TYPE_CHECKING:
    from mxn.facerec.model import FaceMXN
    from mxn.facerec.pipeline import LabelledMovie
    from mxn.facerec.tuning import FaceThresholds, Replay
    from mxn.modelfile import MXNModel
    from mxn.storage.store import Store


@dataclass
class MovieFiles:
    """What :func:`make_movie` wrote: the video, its truth, and the cast's gallery when asked for."""

    video: Path
    truth: Path
    frames: int
    shots: int
    gallery: Path | None = None
    photos: dict[str, list[Path]] = field(default_factory=dict)  # per person in the gallery

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": str(self.video),
            "truth": str(self.truth),
            "frames": self.frames,
            "shots": self.shots,
            "gallery": None if self.gallery is None else str(self.gallery),
            "photos": {name: [str(p) for p in paths] for name, paths in self.photos.items()},
        }


def make_movie(
    out: PathLike,
    preset: str = "short",
    seed: int = 0,
    seconds: float | None = None,
    gallery: PathLike | None = None,
    leave_out: str | Sequence[str] = (),
) -> MovieFiles:
    """Compose an evaluation movie from real faces that ship in packages, with its truth (``mxn movie``).

    Writes ``out`` (``NAME.mp4``) and ``NAME.truth.jsonl``; with ``gallery``,
    also a folder of photos per cast member (``gallery/NAME/*.jpg``) that
    leaves out the people in ``leave_out``, so the oracle must call them
    strangers. ``preset`` is ``"tiny"``, ``"short"`` or ``"feature"``. The
    gallery is written before the movie, and the movie atomically, so a movie
    on disk means its gallery is whole.
    """
    from mxn.datasets.movies import make_movie as compose
    from mxn.datasets.movies import movie_presets, write_gallery, write_movie

    if preset not in movie_presets:
        raise OptionError(f"unknown movie preset {preset!r}; choose one of {list(movie_presets)}", "preset")
    options = dict(movie_presets[preset])
    if seconds is not None:
        options["seconds"] = seconds
    composed = compose(seed=seed, **options)
    photos: dict[str, list[Path]] = {}
    if gallery:  # first: a movie on disk (written atomically) means its gallery is whole
        left_out = (leave_out,) if isinstance(leave_out, str) else tuple(leave_out)
        photos = write_gallery(gallery, list(composed.cast), leave_out=left_out)
    video, truth = write_movie(out, composed)
    folder = Path(gallery) if gallery else None
    return MovieFiles(video, truth, composed.frames, len(composed.shots), gallery=folder, photos=photos)


def _face_model(model: PathLike | MXNModel | FaceMXN | None) -> FaceMXN:
    """The face MXN: one already loaded as it is, else its file or the bundled one."""
    from mxn.facerec.model import FaceMXN
    from mxn.modelfile import MXNModel

    if isinstance(model, FaceMXN):
        return model
    if isinstance(model, MXNModel):
        return FaceMXN(model)
    return FaceMXN.from_file(model) if model else FaceMXN.default()


def _oracle(gallery: PathLike | None):
    """The gallery oracle (dlib's embedder over ``gallery/NAME/*.jpg``) and the people it knows."""
    from mxn.facerec.oracle import FaceEmbedder, Gallery, GalleryOracle

    embedder = FaceEmbedder()
    if gallery is None:
        return GalleryOracle(Gallery([], []), embedder=embedder), set()
    found = Gallery.from_folder(gallery, embedder=embedder)
    return GalleryOracle(found, embedder=embedder), set(found.people)


def _face_thresholds(path: PathLike | None, face_model, alpha: float | None):
    """Per-exit thresholds and the rate: from a `mxn tune faces` file, else the face model's card."""
    from mxn.facerec.tuning import FaceThresholds

    if path:
        tuned = FaceThresholds.load(path, model_sha=face_model.sha, num_exits=len(face_model.dims))
        return tuned.thresholds, alpha if alpha is not None else tuned.alpha
    card = face_model.model.thresholds
    if card is None:
        raise OptionError(
            "the face model carries no thresholds: run `mxn tune faces` and pass {thresholds} FILE",
            usage=False,
            mentions=("thresholds",),
        )
    return tuple(card), alpha if alpha is not None else DEFAULT_ALPHA


def label_faces(
    movies: PathLike | Sequence[PathLike],
    gallery: PathLike | None = None,
    model: PathLike | MXNModel | FaceMXN | None = None,
    thresholds: PathLike | None = None,
    alpha: float | None = None,
    movie: str | None = None,
    db: str | os.PathLike | Store | None = None,
    detector: str = FaceConfig.detector,
    stride: int = FaceConfig.stride,
    min_face: int = FaceConfig.min_face,
    chunk_frames: int = FaceConfig.chunk_frames,
    out: PathLike | None = None,
    srt: PathLike | None = None,
    annotate: PathLike | None = None,
    force: bool = False,
    progress: bool = True,
    on_error: Callable[[str, Exception], None] | None = None,
    html: PathLike | None = None,
) -> LabelledMovie:
    """Label who appears when in ``movies``, taken in order as one movie (``mxn faces``).

    Each face found by ``detector`` is named by Algorithm 3: the face MXN's
    exits answer when a running-average person is close enough, the oracle
    (dlib's embedder matched against ``gallery/NAME/*.jpg``; strangers get
    stable ``unknown-N`` names) only when no exit is sure. ``thresholds`` is a
    file from :func:`tune_faces` (default: the face model's card); ``alpha``
    the running averages' rate (default: the thresholds file's, or 1/15).

    The movie is a named project in the database (``movie``, default: the
    first file's name): calling again answers from it and runs no model;
    more videos extend it (``force`` labels stored videos again). A missing
    or damaged video is listed in the result's ``failed`` (and passed to
    ``on_error``) and leaves nothing in the database; the others still run.
    Writes the face rows to ``out`` (``.json`` or ``.csv``), subtitles to
    ``srt``, an annotated copy of the first video that could be read to
    ``annotate`` and an HTML report to ``html`` when given; none of them
    when every video failed and the movie holds no faces.

    ``model`` is a face model file (default: the bundled face MXN) or one
    already loaded (a :class:`~mxn.facerec.model.FaceMXN` or its ``MXNModel``).

    Returns a :class:`~mxn.facerec.pipeline.LabelledMovie`: the library's
    :class:`~mxn.facerec.pipeline.MovieResult` (rows, per-video stats,
    ``summary()``) with ``db``, ``config``, ``gallery_people`` (the people the
    gallery knows) and ``to_dict()``.
    """
    paths = as_paths(movies, "movies")
    load_tensorflow()
    if html:
        from mxn.reports import write_faces_report
    from mxn.facerec.outputs import ROW_FORMATS, annotate_video, subtitle_cues, write_faces, write_srt
    from mxn.facerec.pipeline import LabelledMovie, label_movie
    from mxn.media.video import probe

    check_suffix(out, ROW_FORMATS, "out")
    face_model = _face_model(model)
    limits, rate = _face_thresholds(thresholds, face_model, alpha)
    config = FaceConfig(limits, rate, detector, stride, min_face, chunk_frames)
    oracle, people = _oracle(gallery)
    url = database_url(db)
    with open_store(db, create=True) as store:
        result = label_movie(
            paths, store, face_model, oracle, config, movie=movie, force=force, progress=progress,
            on_error=on_error,
        )  # fmt: skip
    labelled = LabelledMovie.of(result, db=url, config=config, gallery_people=tuple(sorted(people)))
    if not labelled.videos and not labelled.faces:
        return labelled  # every video failed: nothing stored, nothing to write
    failed = {f["video"] for f in labelled.failed}
    readable = [m for m in paths if m not in failed]
    if out:
        write_faces(labelled.faces, out, extra={"summary": labelled.summary()})
    if srt:
        fps = max((probe(m).fps for m in readable), default=25.0)
        write_srt(subtitle_cues(labelled.faces, stride / fps), srt)
    if annotate and readable:
        first = Path(readable[0]).name
        shown = [f for f in labelled.faces if f.video == first]
        annotate_video(readable[0], shown, annotate, hold_frames=stride)
    if html:
        write_faces_report(html, labelled)
    return labelled


@dataclass
class FaceTuning:
    """What :func:`tune_faces` found: the thresholds (as their file holds them), their replay, the sweep."""

    thresholds: FaceThresholds
    replay: Replay  # Algorithm 3 replayed with the thresholds: accuracy, hit rate per exit, oracle calls
    sweep: list[dict[str, float]]  # hit rate and accuracy per 1/alpha
    faces: int
    oracle_accuracy: float  # the oracle alone on the same faces

    def to_dict(self) -> dict[str, Any]:
        return {**self.thresholds.to_dict(), "alpha_sweep": self.sweep}


def tune_faces(
    videos: PathLike | Sequence[PathLike],
    gallery: PathLike | None = None,
    model: PathLike | MXNModel | FaceMXN | None = None,
    target_accuracy: float = TARGET_ACCURACY,
    alpha: float = DEFAULT_ALPHA,
    detector: str = FaceConfig.detector,
    stride: int = FaceConfig.stride,
    out: PathLike | None = "face-thresholds.json",
    plot: PathLike | None = None,
    into_model: PathLike | None = None,
) -> FaceTuning:
    """Per-exit distance thresholds reaching ``target_accuracy`` on movies with truth (``mxn tune faces``).

    Each video needs its truth beside it (``NAME.truth.jsonl``, as
    :func:`make_movie` writes). Algorithm 3 is replayed with every exit's
    features and the oracle's answers computed once; exit by exit the largest
    threshold that keeps the target is kept, then 1/alpha is swept
    (Fig. 5.6). Writes the thresholds file to ``out`` (for :func:`label_faces`;
    ``None``: not written), the sweep to ``plot`` (``.png``) and, with
    ``into_model``, a copy of the face model carrying the thresholds in its card.
    ``model`` is a face model file (default: the bundled face MXN) or one
    already loaded, which is left as it was.
    """
    paths = as_paths(videos, "videos")
    for path in paths:
        existing(path, "video", folder=False)
    check_suffix(plot, (".png",), "plot")
    load_tensorflow()
    from mxn.facerec.evaluation import truth_sample
    from mxn.facerec.tuning import (
        FaceThresholds,
        plot_alpha_sweep,
        sweep_alpha,
        truth_accuracy,
        tune_thresholds,
    )

    face_model = _face_model(model)
    oracle, people = _oracle(gallery)
    sample, info = truth_sample(paths, face_model, oracle, people, detector, stride)
    limits, replayed = tune_thresholds(sample, target_accuracy, alpha)
    oracle_only = truth_accuracy(sample.oracle_names, sample.truth, sample.gallery)
    sweep = sweep_alpha(sample, limits)
    tuned = FaceThresholds(
        tuple(limits),
        alpha=alpha,
        model_sha=face_model.sha,
        target_accuracy=target_accuracy,
        evaluation={**replayed.to_dict(), "faces": len(sample), "oracle_accuracy": oracle_only, **info},
    )
    if out:
        tuned.save(out)
    if plot:
        plot_alpha_sweep(sweep, plot)
    if into_model:
        from mxn.modelfile import save_model

        calibration = {"face_thresholds": tuned.to_dict(), "alpha_sweep": sweep}
        save_model(replace(face_model.model, thresholds=list(limits), calibration=calibration), into_model)
    return FaceTuning(tuned, replayed, sweep, len(sample), oracle_only)


@dataclass
class TrainedFaceModel:
    """A face model :func:`train_faces` made: the model, where it was written, and its training report."""

    model: MXNModel
    path: Path
    report: dict[str, Any]  # kind, crops, held-out cosine / accuracy per exit, ...

    def to_dict(self) -> dict[str, Any]:
        return self.report


def train_faces(
    sources: PathLike | Sequence[PathLike],
    out: PathLike,
    identities: bool = False,
    width: float = FACE_WIDTH,
    epochs: int = 30,
    stride: int = TRAINING_STRIDE,
    max_faces: int = 20000,
    detector: str = FaceConfig.detector,
    seed: int = 0,
    source: str | None = None,
    progress: bool = True,
    log: Log | None = None,
) -> TrainedFaceModel:
    """Train a face MXN (MobileNetV1, embedding exits) on the faces of ``sources`` (``mxn train faces``).

    By default every exit is distilled from dlib's 128-D embedder on the faces
    found in ``sources`` (every ``stride``-th video frame, at most
    ``max_faces``); with ``identities``, ``sources`` is one class-per-folder
    face data set and the model learns to tell the people apart. ``source``
    is what the card records as the training data (default: the sources).
    """
    paths = as_paths(sources, "sources", what="video, photo or folder")
    if identities and len(paths) != 1:
        raise OptionError("{identities} takes one class-per-folder face folder", mentions=("identities",))
    load_tensorflow()
    from mxn.facerec.model import distill_config, face_spec, train_face_mxn_distill, train_face_mxn_identities
    from mxn.facerec.oracle import FaceEmbedder
    from mxn.facerec.training_set import collect_face_crops
    from mxn.images import load_image_folder
    from mxn.modelfile import save_model

    spec = face_spec(width=width)
    if identities:
        data = load_image_folder(paths[0], spec.input_size)
        model, report = train_face_mxn_identities(
            data.images,
            data.labels,
            data.classes,
            spec,
            distill_config(loss="ce", epochs=epochs, seed=seed, progress=progress),
            source=source or paths[0],
        )
    else:
        config = distill_config(epochs=epochs, seed=seed, progress=progress)
        crops = collect_face_crops(paths, detector, stride, max_faces=max_faces, progress=progress)
        say(log, f"{len(crops)} faces; embedding them with dlib (the teacher) ...")
        teacher = FaceEmbedder().embed_crops(crops)
        model, report = train_face_mxn_distill(
            crops, teacher, spec, config, source=source or ", ".join(paths), centre=True
        )
    return TrainedFaceModel(model, save_model(model, out), report)
