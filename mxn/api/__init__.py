"""The Python API: one function per job of the ``mxn`` command, with the command's options.

Every ``mxn`` job command is a thin layer over one function here: it parses
its options, calls the function and prints what came back. So a script and
the command line run the same code and cannot drift apart; docs/API.md is
the reference in plain words.

=====================  ===========================  ==========================================
function               command                      returns
=====================  ===========================  ==========================================
:func:`train`          ``mxn train DATA``           :class:`TrainedModel`
:func:`calibrate`      ``mxn calibrate``            :class:`mxn.calibration.Calibration`
:func:`evaluate`       ``mxn evaluate``             :class:`mxn.evaluation.Evaluation`
:func:`render_traffic_video`  ``mxn world video``   :class:`mxn.datasets.world.video.RenderedClip`
:func:`render_crops`   ``mxn world crops``          the data set's manifest (a dict)
:func:`ingest`         ``mxn ingest``               :class:`IngestResults` (a list of ``IngestResult``)
:func:`index_crops`    ``mxn crops``                the training set's manifest (a dict)
:func:`query`          ``mxn query``                :class:`mxn.query.result.QueryResult`
:func:`tune_query`     ``mxn tune query``           :class:`mxn.query.tuning.TuningResult`
:func:`make_movie`     ``mxn movie``                :class:`MovieFiles`
:func:`label_faces`    ``mxn faces``                :class:`mxn.facerec.pipeline.MovieResult`
:func:`tune_faces`     ``mxn tune faces``           :class:`FaceTuning`
:func:`train_faces`    ``mxn train faces``          :class:`TrainedFaceModel`
=====================  ===========================  ==========================================

Conventions, the same in every function:

* parameters are the command's options with ``_`` for ``-``
  (``--cluster-threshold`` is ``cluster_threshold``) and the same defaults;
  options that switch something off on the command line are positive here
  (``--no-cache`` is ``cache=False``, ``--quiet`` is ``progress=False``);
* paths are ``str`` or :class:`~pathlib.Path`; ``db`` is a database URL
  (``None``: ``$MXN_DB``, else ``sqlite:///mxn.db``; a ``Path`` is an SQLite
  file) or an open :class:`mxn.storage.store.Store`, used as it is and left open;
  ``model``, ``gt``, ``qmodel`` are model files (``None``: the bundled
  default) or, for :func:`ingest`, :func:`query`, :func:`tune_query`,
  :func:`label_faces` and :func:`tune_faces`, a model already loaded (an
  :class:`~mxn.modelfile.MXNModel`; for the face jobs also a
  :class:`mxn.facerec.model.FaceMXN`), used as it is, so a script that runs
  several jobs loads each model once;
* lists are sequences or the command line's comma-separated text (``"0,1,2"``);
* each result object has ``to_dict()``: what ``--json`` writes;
* a bad argument raises :class:`OptionError` (a ``ValueError``) naming it,
  before any slow work starts; the library's own errors (``QueryError``,
  ``ConfigError``, ``ModelFileError``, ``VideoError``, ``StoreError``, ...)
  pass through unchanged, each saying what to do.

Like the command line, this module is the top layer: it is the one part of
``mxn/`` that reaches into ``ingest``, ``query``, ``facerec`` and ``storage``.
It imports them inside each function, so importing it stays cheap (no
TensorFlow until a job runs).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mxn.calibration import Calibration
    from mxn.datasets.world.video import RenderedClip
    from mxn.evaluation import Evaluation
    from mxn.facerec.model import FaceMXN
    from mxn.facerec.pipeline import MovieResult
    from mxn.facerec.tuning import FaceThresholds, Replay
    from mxn.ingest.config import IngestConfig
    from mxn.ingest.pipeline import IngestResult
    from mxn.modelfile import MXNModel
    from mxn.query.result import QueryResult
    from mxn.query.tuning import TuningResult
    from mxn.storage.store import Store
    from mxn.training import FitReport

PathLike = str | os.PathLike
#: A callable that shows one line of news (the command line passes ``click.echo``).
Log = Callable[[str], None]

__all__ = [
    "FaceTuning",
    "IngestResults",
    "MovieFiles",
    "OptionError",
    "TrainedFaceModel",
    "TrainedModel",
    "calibrate",
    "database_url",
    "evaluate",
    "ingest",
    "label_faces",
    "make_movie",
    "parse_time",
    "query",
    "render_crops",
    "render_traffic_video",
    "train",
    "train_faces",
    "tune_faces",
    "tune_query",
]


# -- errors and argument parsing ----------------------------------------------------------------------------


class OptionError(ValueError):
    """An argument that cannot work, raised before any slow work starts.

    One check serves the Python caller and the command line, so the message
    names arguments as ``{name}`` fields that each caller fills in its own
    words: ``str(err)`` with the parameter (``workers``), the command line
    with the option (``--workers``).

    Args:
        message: what is wrong and what to do, with ``{name}`` for each
            argument in ``mentions``.
        param: the one argument at fault, if there is one (the command line
            shows ``Invalid value for --param: message``).
        usage: a misuse of the options (exit code 2 on the command line),
            rather than a state of things that the options cannot change (1).
        mentions: the arguments the message names (only these are filled
            in, so a value quoted in the message may hold braces).
    """

    def __init__(
        self, message: str, param: str | None = None, usage: bool = True, mentions: Sequence[str] = ()
    ) -> None:
        self.message, self.param, self.usage, self.mentions = message, param, usage, tuple(mentions)
        super().__init__(self.render(str))

    def text(self, name: Callable[[str], str]) -> str:
        """The message with each mentioned argument spelt by ``name``."""
        out = self.message
        for mention in self.mentions:
            out = out.replace(f"{{{mention}}}", name(mention))
        return out

    def render(self, name: Callable[[str], str]) -> str:
        """The whole message, prefixed with the argument at fault, spelt by ``name``."""
        return f"{name(self.param)}: {self.text(name)}" if self.param else self.text(name)


def _paths(values: PathLike | Iterable[PathLike], param: str, what: str = "video") -> list[str]:
    """One path or several, as a list of strings (a lone string is one path, not its characters)."""
    items = [values] if isinstance(values, str | os.PathLike) else list(values)
    if not items:
        raise OptionError(f"give at least one {what}", param)
    return [os.fspath(v) for v in items]


def _int_list(value: str | Sequence[int] | None, param: str) -> tuple[int, ...] | None:
    """``"0,2,4"`` or ``[0, 2, 4]`` as a tuple; ``None`` or empty text: ``None`` (the default)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        parts = value.split(",") if isinstance(value, str) else list(value)
        return tuple(int(x) for x in parts if not isinstance(x, str) or x.strip())
    except (TypeError, ValueError):
        raise OptionError(f"expected exit numbers such as 0,2,4; got {value!r}", param) from None


def _float_list(value: str | Sequence[float] | None, param: str) -> list[float] | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        parts = value.split(",") if isinstance(value, str) else list(value)
        return [float(x) for x in parts]
    except (TypeError, ValueError):
        raise OptionError(f"expected comma-separated numbers, got {value!r}", param) from None


def _names(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"a,b"`` or ``["a", "b"]`` as a tuple of stripped names; ``None``: ``None``."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    return tuple(p.strip() for p in parts if p.strip()) or None


_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")


def parse_time(text: str | float | None, param: str | None = None) -> float | None:
    """Seconds from ``90``, ``90.5``, ``"1:30"`` or ``"0:01:30"``; ``None`` stays ``None``."""
    if text is None:
        return None
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        text = text.strip()
        try:
            seconds = float(text)
        except ValueError:
            match = _CLOCK.match(text)
            if not match:
                raise OptionError(f"expected seconds or [h:]mm:ss, got {text!r}", param) from None
            hours, minutes, secs = match.groups()
            seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
    if seconds < 0:
        raise OptionError(f"times are >= 0, got {text!r}", param)
    return seconds


def _size(value: str | Sequence[int], param: str) -> tuple[int, int]:
    """``"640x360"`` or ``(640, 360)`` as ``(width, height)``."""
    try:
        width, height = (int(v) for v in (value.lower().split("x") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        raise OptionError(f"expected WIDTHxHEIGHT, got {value!r}", param) from None
    return width, height


def _suffix(path: PathLike | None, suffixes: Sequence[str], param: str) -> None:
    """Refuse an output whose extension its writer cannot write, before the work that feeds it."""
    if path and not os.fspath(path).lower().endswith(tuple(suffixes)):
        raise OptionError(f"{os.fspath(path)}: expected {' or '.join(suffixes)}", param)


def _existing(path: PathLike, what: str, folder: bool) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such {what}")
    if folder and not path.is_dir():
        raise NotADirectoryError(f"{path}: expected a folder ({what}), found a file")
    if not folder and path.is_dir():
        raise IsADirectoryError(f"{path}: expected a file ({what}), found a folder")
    return path


def database_url(db: str | os.PathLike | Store | None = None) -> str:
    """The database every job uses: ``db``, else ``$MXN_DB``, else ``sqlite:///mxn.db``.

    A URL is used as it is; anything else (``"cams.db"``, ``Path("out/x.db")``)
    is an SQLite file (:func:`mxn.storage.store.database_url`); an open
    :class:`~mxn.storage.store.Store` gives its URL (password masked).
    """
    from mxn.storage.store import Store
    from mxn.storage.store import database_url as resolve

    if isinstance(db, Store):
        return db.url
    return resolve(db)


@contextmanager
def _open_store(db: str | os.PathLike | Store | None, create: bool = False) -> Iterator[Store]:
    """The store of ``db`` for one job: opened and closed here, or the caller's open one, left open.

    Only the jobs that index (ingest, faces) ``create`` a store; the others
    open an existing mxn database or fail, writing nothing. An SQLite file
    made for a job that stored nothing (every video failed) is removed again:
    a failed job leaves nothing behind.
    """
    from mxn.storage.store import Store, sqlite_path

    if isinstance(db, Store):
        yield db
        return
    url = database_url(db)
    path = sqlite_path(url) if create else None
    fresh = path is not None and not path.exists()
    store = Store(url, create=create)
    try:
        yield store
    finally:
        empty = fresh and _holds_nothing(store)
        store.close()
        if empty and path is not None:
            path.unlink(missing_ok=True)


def _holds_nothing(store: Store) -> bool:
    """Whether a store has no row of anything (an error reading it counts as holding something)."""
    try:
        return not any(store.counts().values())
    except Exception:  # the job's own error, if any, is the one to see
        return False


def _loaded(value: object) -> bool:
    """True for a model or store already open, rather than a file or URL (``None``: the default)."""
    return not isinstance(value, str | os.PathLike | None)


def _model(model: PathLike | MXNModel | None, default: str) -> MXNModel:
    """``model`` ready to run: one already loaded as it is, else its file or the bundled ``default``."""
    from mxn.defaults import load_default_model
    from mxn.modelfile import MXNModel, load_model

    if isinstance(model, MXNModel):
        return model
    return load_model(model) if model else load_default_model(default)


def _given_model(model: PathLike | MXNModel | None, param: str) -> MXNModel | None:
    """An optional model argument: ``None`` stays ``None``, a file is checked and loaded."""
    if model is None or _loaded(model):
        return model  # type: ignore[return-value]
    from mxn.modelfile import load_model

    return load_model(_existing(model, f"{param} model file", folder=False))


def _log(log: Log | None, line: str) -> None:
    if log is not None:
        log(line)


def _tensorflow() -> None:
    """Load TensorFlow without its C++ start-up lines on the terminal, as the command line does."""
    from mxn.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()


# -- models -------------------------------------------------------------------------------------------------


@dataclass
class TrainedModel:
    """A model :func:`train` made: the model, where it was written, and the fitting report."""

    model: MXNModel
    path: Path
    report: FitReport

    def to_dict(self) -> dict[str, Any]:
        return {"model": str(self.path), "card": self.model.card()}


def train(
    data: PathLike | Sequence[PathLike],
    out: PathLike,
    backbone: str = "resnet18",
    width: float = 0.25,
    input_size: int = 64,
    exits: str | Sequence[int] | None = None,
    stem: str = "imagenet",
    aggregation: bool = True,
    loss: str = "ce",
    gamma: float = 2.0,
    exit_weights: str | Sequence[float] | None = None,
    epochs: int = 30,
    batch_size: int = 64,
    optimizer: str = "sgd",
    lr: float = 0.05,
    augment: bool = True,
    seed: int = 0,
    target_precision: float = 0.99,
    init: PathLike | MXNModel | None = None,
    teacher: PathLike | MXNModel | None = None,
    soft_teacher: bool = False,
    progress: bool = True,
    log: Log | None = None,
) -> TrainedModel:
    """Train a multi-exit network on a class-per-folder image directory (``mxn train DATA``).

    ``data`` holds one folder per class, or ``train/ val/ calibration/ test/``
    folders that each hold the class folders; missing splits are carved from
    the training images. Several folders are merged split by split
    (:func:`mxn.images.merge_datasets`). Thresholds are calibrated on held-out
    images for ``target_precision`` and stored in the model file ``out``.

    ``init`` (a model file or loaded model of the same architecture and
    classes, any input size) starts from its weights instead of random ones.
    ``teacher`` labels every image with its top-1 answer instead of the
    folder's name (:func:`mxn.training.teacher_labels`): how the default ingest and
    query MXNs learn to agree with the ground-truth CNN. ``soft_teacher``
    trains on the teacher's probabilities instead of its top-1 (distillation).
    """
    if soft_teacher and teacher is None:
        raise ValueError("soft_teacher needs a teacher model")
    _tensorflow()
    from mxn.evaluation import agreement
    from mxn.images import load_dataset, merge_datasets, resize_batch
    from mxn.modelfile import model_sha, save_model
    from mxn.spec import NetworkSpec
    from mxn.training import TrainConfig, fit_model, teacher_labels

    # the settings are checked before the images load, so a typo costs nothing
    spec = NetworkSpec(
        backbone=backbone,
        width=width,
        input_size=input_size,
        stem=stem,
        exits=_int_list(exits, "exits"),
        aggregation=aggregation,
    )
    config = TrainConfig(
        loss=loss,
        gamma=gamma,
        exit_weights=_float_list(exit_weights, "exit_weights"),
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        learning_rate=lr,
        augment=augment,
        seed=seed,
        progress=progress,
    )
    what = "data folder (DATA/CLASS/*.jpg)"
    roots = [_existing(d, what, folder=True) for d in _paths(data, "data", "data folder")]
    start, tutor = _given_model(init, "init"), _given_model(teacher, "teacher")
    size = input_size if tutor is None else tutor.spec.input_size
    _log(log, f"loading {', '.join(map(str, roots))} at {size}x{size} ...")
    splits = merge_datasets([load_dataset(root, size) for root in roots])
    agreed: dict[str, float] = {}
    if tutor is not None:
        _log(log, f"labelling every image with the teacher ({tutor.spec.backbone} x{tutor.spec.width}) ...")
        labelled = teacher_labels(splits, tutor, soft=soft_teacher)
        agreed = {k: agreement(splits[k], labelled[k]) for k in splits}
        shares = ", ".join(f"{k} {v:.1%}" for k, v in agreed.items())
        _log(log, f"the teacher agrees with the folder labels on: {shares}")
        splits = {k: replace(v, images=resize_batch(v.images, input_size)) for k, v in labelled.items()}
    source = ", ".join(str(root.resolve()) for root in roots)
    model, report = fit_model(spec, splits, config, target_precision, source=source, init=start)
    if start is not None:
        model.training["init"] = {"sha256": model_sha(start), "input_size": start.spec.input_size}
    if tutor is not None:
        model.training["teacher"] = {
            "sha256": model_sha(tutor),
            "agreement_with_folders": agreed,
            "targets": "probabilities" if soft_teacher else "top-1",
        }
    return TrainedModel(model, save_model(model, out), report)


def _labelled_images(data: PathLike, model: MXNModel, prefer: str):
    """Images from ``data`` (or its ``prefer`` split) numbered by the model's classes."""
    from mxn.images import load_image_folder

    root = _existing(data, "data folder (DATA/CLASS/*.jpg)", folder=True)
    root = root / prefer if (root / prefer).is_dir() else root
    return load_image_folder(root, model.spec.input_size, classes=model.classes)


def calibrate(
    model: PathLike,
    data: PathLike,
    target_precision: float = 0.99,
    confidence: float = 0.95,
    out: PathLike | None = None,
) -> Calibration:
    """Fit per-exit confidence thresholds on held-out images, into the model file (``mxn calibrate``).

    ``data`` is a class-per-folder directory with the model's class names (its
    ``calibration/`` sub-folder when it has one). The calibrated model is
    written to ``out``, or over ``model`` when ``out`` is ``None``.
    """
    _tensorflow()
    from mxn.calibration import calibrate_thresholds
    from mxn.modelfile import load_model, save_model

    loaded = load_model(model)
    images = _labelled_images(data, loaded, prefer="calibration")
    outputs = loaded.runner().all_exits(images.images).outputs
    cal = calibrate_thresholds(outputs, images.labels, target_precision, confidence)
    loaded.thresholds, loaded.calibration = cal.thresholds, cal.to_dict()
    save_model(loaded, out or model)
    return cal


def evaluate(model: PathLike, data: PathLike) -> Evaluation:
    """Per-exit accuracy and the early-exit cascade's results on labelled images (``mxn evaluate``).

    ``data`` is a class-per-folder directory (its ``test/`` sub-folder when it has one).
    """
    _tensorflow()
    from mxn.evaluation import evaluate as evaluate_model
    from mxn.modelfile import load_model

    loaded = load_model(model)
    return evaluate_model(loaded, _labelled_images(data, loaded, prefer="test"))


# -- the traffic world --------------------------------------------------------------------------------------


def render_traffic_video(
    out: PathLike,
    preset: str = "downtown",
    seconds: float = 60.0,
    seed: int = 0,
    size: str | Sequence[int] = "640x360",
    fps: float = 30.0,
    progress: bool = True,
) -> RenderedClip:
    """Render a synthetic traffic clip and its per-frame truth (``mxn world video``).

    Writes ``out`` (``.mp4``) and ``NAME.truth.jsonl`` beside it; the same
    seed always gives the same clip. ``size`` is ``"WIDTHxHEIGHT"`` or a pair.
    """
    from mxn.datasets.world.video import render_clip

    width, height = _size(size, "size")
    return render_clip(out, preset, seconds, seed=seed, size=(width, height), fps=fps, progress=progress)


def render_crops(
    out: PathLike,
    size: int = 64,
    seconds: float | None = None,
    presets: str | Sequence[str] | None = None,
    seed: int = 0,
    source: str = "truth",
    every: int = 15,
    max_per_track: int = 4,
    progress: bool = True,
) -> dict[str, Any]:
    """Cut a class-per-folder crops data set from rendered traffic worlds (``mxn world crops``).

    ``seconds`` is the simulated time per preset for the train split (the
    others get 20-30% of it); ``None`` keeps the data set's defaults. A track
    gives a crop every ``every`` frames, ``max_per_track`` at most. Returns
    the manifest written beside the crops (counts per split and class, seeds,
    settings).
    """
    from mxn.datasets.world.crop_set import CropConfig, build_crops

    options: dict[str, Any] = {"size": size, "source": source, "every": every, "max_per_track": max_per_track}
    if seconds is not None:
        options["seconds"] = {"train": seconds, "val": 0.2 * seconds, "calibration": 0.3 * seconds,
                              "test": 0.3 * seconds}  # fmt: skip
    chosen = _names(presets)
    if chosen:
        options["presets"] = chosen
    return build_crops(out, CropConfig(**options), seed=seed, progress=progress)


# -- ingest and queries -------------------------------------------------------------------------------------


class IngestResults(list["IngestResult"]):
    """The per-video results of one :func:`ingest` call (a list), with the database and settings it used."""

    def __init__(self, results: Iterable[IngestResult], db: str, config: IngestConfig) -> None:
        super().__init__(results)
        self.db = db
        self.config = config  # resolved against the model: the exits and cluster exit it really used

    @property
    def failed(self) -> list[IngestResult]:
        return [r for r in self if r.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return {"db": self.db, "config": self.config.index_key(), "videos": [r.to_dict() for r in self]}


def ingest(
    videos: PathLike | Sequence[PathLike],
    db: str | os.PathLike | Store | None = None,
    model: PathLike | MXNModel | None = None,
    mode: str = "mxn",
    exits: str | Sequence[int] | None = None,
    topk: int = 2,
    cluster_exit: int | None = None,
    cluster_threshold: float = 0.1,
    max_clusters: int = 100,
    stride: int = 1,
    warmup: int = 45,
    min_area: int = 60,
    skip_static: bool = False,
    chunk_frames: int = 900,
    range_frames: int = 9000,
    crop_size: int = 128,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
    html: PathLike | None = None,
) -> IngestResults:
    """Index videos: moving objects, their aggregated top-k labels, per-label clusters (``mxn ingest``).

    ``mode`` is ``"mxn"`` (the union of every chosen exit's top-``topk``),
    ``"focus"`` (one exit, top-``topk``) or ``"gt-all"`` (the ground-truth
    CNN's top-1 on every object: the reference queries are judged against).
    ``model`` defaults to the bundled ingest MXN (the ground-truth CNN for
    gt-all); a model already loaded is used as it is. With ``workers`` (a
    local Dask cluster) or ``scheduler`` (an existing one, ``tcp://HOST:PORT``)
    the ranges of ``range_frames`` frames run in parallel; the index is the
    same either way. The workers load the model and open the database
    themselves, so they need ``model`` as a file and ``db`` as a URL.

    A missing or damaged video is not an exception: its result has status
    ``"failed"`` and an ``error``, and the other videos still ingest. A video
    already in the store is ``"skipped"`` unless ``force``. A killed ingest
    resumes where it stopped when called again with the same settings.
    ``html`` also writes the HTML report of the run.
    """
    paths = _paths(videos, "videos")
    if workers is not None and scheduler is not None:
        raise OptionError(
            "give {workers} (a local cluster) or {scheduler} (an existing one), not both",
            mentions=("workers", "scheduler"),
        )
    if workers is not None and workers < 1:
        raise OptionError(f"must be >= 1, got {workers}", "workers")
    distributed = workers is not None or scheduler is not None
    if distributed and (_loaded(model) or _loaded(db)):
        raise OptionError(
            "with {workers} or {scheduler}, give {model} as a file and {db} as a URL: each worker "
            "loads the model and opens the database itself",
            mentions=("workers", "scheduler", "model", "db"),
        )
    _tensorflow()
    if html:
        from mxn.reports import write_ingest_report  # before the work: a missing package fails now
    from mxn.defaults import default_model_path
    from mxn.ingest.config import IngestConfig
    from mxn.ingest.extraction import ExtractorConfig
    from mxn.ingest.pipeline import ingest_videos

    config = IngestConfig(
        mode=mode,
        exits=_int_list(exits, "exits"),
        topk=topk,
        cluster_exit=cluster_exit,
        cluster_threshold=cluster_threshold,
        max_clusters=max_clusters,
        stride=stride,
        chunk_frames=chunk_frames,
        range_frames=range_frames,
        crop_size=crop_size,
        skip_static=skip_static,
        extractor=ExtractorConfig(warmup=warmup, min_area=min_area),
    )
    default = "gt" if mode == "gt-all" else "ingest"
    loaded = _model(model, default)
    resolved = config.resolve(loaded.spec.num_exits)  # an exit the model lacks fails before any video
    url = database_url(db)
    if not distributed:
        with _open_store(db, create=True) as store:
            results = ingest_videos(paths, store, loaded, config, force=force, progress=progress)
    else:
        from mxn.ingest.distributed import ingest_videos_distributed

        model_file = Path(model) if model else default_model_path(default)
        results = ingest_videos_distributed(
            paths, url, model_file, config, workers=workers, scheduler=scheduler, force=force,
            progress=progress,
        )  # fmt: skip
    done = IngestResults(results, url, resolved)
    if html and len(done.failed) < len(done):  # every video failed: no store to report on
        with _open_store(db) as store:
            write_ingest_report(html, store, done)
    return done


def index_crops(
    out: PathLike,
    db: str | os.PathLike | Store | None = None,
    gt: PathLike | MXNModel | None = None,
    index: str = "mxn",
    video: str | None = None,
    every: int = 1,
    block_seconds: float = 10.0,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """A training set cut from an index, labelled by the ground-truth CNN (``mxn crops``).

    Focus's specialisation data: the representative crops ingest kept (each
    object once; ``every`` keeps every N-th), in class-per-folder
    train/val/calibration/test splits cut by ``block_seconds`` of video, under
    the GT-CNN's top-1 label; ``mxn train OUT --init query.mxn`` fine-tunes a
    model on them. ``video`` limits it to one video (name, id or hash prefix).
    Returns the manifest ``OUT/manifest.json`` holds.
    """
    if every < 1:
        raise OptionError(f"every must be at least 1, got {every}")
    if block_seconds <= 0:
        raise OptionError(f"block_seconds must be positive, got {block_seconds}")
    if index not in ("mxn", "focus"):
        raise OptionError(f"index must be mxn or focus, got {index!r}")
    with _open_store(db) as store:  # an existing mxn database, or an error before the model loads
        _tensorflow()
        from mxn.ingest.training_set import export_training_set
        from mxn.query.executor import find_videos

        gt_model = _model(gt, "gt")
        video_id = find_videos(store, video)[0].id if video not in (None, "all") else None
        return export_training_set(store, out, gt_model, index, video_id, every, block_seconds, seed=seed,
                                   progress=progress)  # fmt: skip


def _query_models(gt: PathLike | MXNModel | None, qmodel: PathLike | MXNModel | None, need_query: bool):
    """The ground-truth CNN and (when ``need_query``) the query MXN: as given, or the bundled ones."""
    return _model(gt, "gt"), (_model(qmodel, "query") if need_query else None)


def query(
    label: str,
    video: str | None = None,
    start: float | str | None = None,
    end: float | str | None = None,
    db: str | os.PathLike | Store | None = None,
    gt: PathLike | MXNModel | None = None,
    qmodel: PathLike | MXNModel | None = None,
    thresholds: PathLike | None = None,
    mode: str = "mxn",
    index: str | None = None,
    out: PathLike | None = None,
    sheet: PathLike | None = None,
    cache: bool = True,
    progress: bool = True,
    html: PathLike | None = None,
    html_images: Sequence[PathLike] = (),
    log: Log | None = None,
) -> QueryResult:
    """Find the frames that show ``label`` (``mxn query LABEL``).

    The candidates are the clusters indexed under the label (in ``video``, a
    name, id or hash prefix; ``None`` or ``"all"``: every video; between
    ``start`` and ``end``, seconds or ``"[h:]mm:ss"``). ``mode`` ``"mxn"``
    lets the query MXN's confident exits decide and sends the rest to the
    ground-truth CNN; ``"focus"`` asks the GT-CNN about every candidate;
    ``"all"`` runs the GT-CNN on every stored object (no index). ``thresholds``
    is a file from :func:`tune_query` (default: the query model's calibrated
    thresholds); ``index`` picks the mxn or focus ingest's index.

    Writes the answer to ``out`` (``.json`` or ``.csv``), a contact sheet to
    ``sheet`` (``.png``) and an HTML report to ``html`` when given, with the
    PNG files of ``html_images`` (plots, e.g. :func:`tune_query`'s) embedded in
    it. ``gt`` and ``qmodel`` may be models already loaded. Verdicts
    are cached, so asking again runs no CNN (``cache=False`` pays again);
    on a read-only database the query answers without caching. An unknown
    label raises :class:`mxn.query.executor.QueryError` listing the labels the
    index knows. ``db`` must be an existing mxn database: a query never
    creates one. Warnings (a read-only database, a query MXN that does not
    know the label) go to ``log`` as they arise and into the result's
    ``warnings``.
    """
    begin, finish = parse_time(start, "start"), parse_time(end, "end")
    _suffix(out, (".json", ".csv"), "out")
    _suffix(sheet, (".png",), "sheet")
    with _open_store(db) as store:  # an existing mxn database, or an error before any model loads
        _tensorflow()
        if html:
            from mxn.reports import write_query_report
        from mxn.query.executor import MODES, QueryExecutor
        from mxn.query.sheet import contact_sheet
        from mxn.query.thresholds import load_thresholds

        if mode not in MODES:  # the executor says the same, but only after both models have loaded
            raise OptionError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}", "mode")
        limits = load_thresholds(thresholds) if thresholds else None
        gt_model, query_model = _query_models(gt, qmodel, need_query=mode == "mxn")
        executor = QueryExecutor(
            store, gt_model, query_model, limits, use_cache=cache, progress=progress, warn=log
        )
        result = executor.run(label, video, begin, finish, mode=mode, index_mode=index)
        if out:
            result.write(out)
        if sheet:
            contact_sheet(result, sheet)
        if html:  # with the store for the gt-all reference, and the sheet just drawn (not drawn twice)
            write_query_report(html, result, store, sheet=sheet, images=html_images)
    return result


def tune_query(
    db: str | os.PathLike | Store | None = None,
    gt: PathLike | MXNModel | None = None,
    qmodel: PathLike | MXNModel | None = None,
    index: str | None = None,
    target_precision: float = 0.99,
    target_recall: float = 0.99,
    confidence: float = 0.95,
    holdout: float = 0.5,
    seed: int = 0,
    reject: bool = True,
    per_label: bool = True,
    out: PathLike | None = "query-thresholds.json",
    plot: PathLike | None = None,
    progress: bool = True,
    pooled_precision: bool = True,
    index_stage: bool = True,
    index_share: float | None = None,
    also: Sequence[str | os.PathLike | Store] = (),
) -> TuningResult:
    """Fit per-exit query thresholds on the index's own candidates (``mxn tune query``).

    Every candidate of the index is labelled by the GT-CNN and scored by the
    query MXN's exits; accept (and, with ``reject``, reject) thresholds are
    fitted exit by exit on part of them and judged on the ``holdout`` rest;
    with ``per_label``, once per label on that label's candidates. With
    ``pooled_precision`` (the default) the target is the precision of all the
    exits' accepts together; otherwise every exit must reach it alone.
    With ``index_stage`` the index's stored ingest scores reject first,
    spending ``index_share`` of the allowed recall loss (default
    :data:`mxn.query.tuning.DEFAULT_INDEX_RECALL_SHARE`). Writes the thresholds
    to ``out`` (for :func:`query`'s ``thresholds``; ``None``: not written)
    and the trade-off curve to ``plot`` (``.png``).
    ``gt`` and ``qmodel`` may be models already loaded. ``also`` names
    more indexes whose candidates join ``db``'s (other cameras' calibration
    clips: a label few of one camera's candidates hold borrows the others').
    Where ``db`` also holds a gt-all index of its videos, the result's
    ``index_ceiling`` gives per label what Focus's answer reaches against it
    (:func:`mxn.query.tuning.index_ceiling`): no thresholds do better.
    Too few candidates raise :class:`mxn.query.tuning.TuningError`.
    """
    _suffix(plot, (".png",), "plot")
    with ExitStack() as opened:  # every index an existing mxn database, before any model loads
        stores = [opened.enter_context(_open_store(source)) for source in (db, *also)]
        _tensorflow()
        from mxn.query.tuning import (
            DEFAULT_INDEX_RECALL_SHARE,
            TuningError,
            TuningSamples,
            collect_samples,
            index_ceiling,
            plot_tradeoff,
            tune,
        )

        gt_model, query_model = _query_models(gt, qmodel, need_query=True)
        parts: list[TuningSamples] = []
        ceiling: dict[str, dict[str, Any]] = {}
        for store in stores:
            try:
                part = collect_samples(store, gt_model, query_model, index or "mxn", progress=progress)
            except TuningError as err:
                if not also:
                    raise
                raise TuningError(f"{store.url}: {err}") from None
            if not parts:  # the index being tuned: what its answers can reach against its gt-all reference
                ceiling = index_ceiling(store, part, index or "mxn")
            parts.append(part)
    samples = TuningSamples.concat(parts)
    share = DEFAULT_INDEX_RECALL_SHARE if index_share is None else index_share
    result = tune(samples, query_model, target_precision, target_recall, confidence, holdout, seed, reject,
                  per_label=per_label, pooled_precision=pooled_precision, index_stage=index_stage,
                  index_recall_share=share)  # fmt: skip
    result = replace(result, index_ceiling=ceiling)
    if out:
        result.thresholds.save(out)
    if plot:
        plot_tradeoff(result, plot)
    return result


# -- faces --------------------------------------------------------------------------------------------------


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
    from mxn.facerec.labeller import DEFAULT_ALPHA
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


@functools.cache
def _labelled_movie_type() -> type:
    """A :class:`~mxn.facerec.pipeline.MovieResult` that also knows its database and settings.

    Made on first use, because its base class lives in a module that imports
    TensorFlow, and importing this module must stay cheap.
    """
    from mxn.facerec.outputs import person_timeline, screen_time
    from mxn.facerec.pipeline import FaceConfig, MovieResult

    @dataclass
    class LabelledMovie(MovieResult):
        """A labelled movie's rows and stats, with its database and settings (``to_dict``: --json)."""

        db: str = ""
        config: FaceConfig | None = None
        gallery_people: tuple[str, ...] = ()  # who the oracle knows; anyone else is a stranger (unknown-N)

        def to_dict(self) -> dict[str, Any]:
            return {
                "db": self.db,
                "config": self.config.to_dict() if self.config else None,
                **self.summary(),
                "screen_time_s": screen_time(person_timeline(self.faces)),
            }

    LabelledMovie.__module__, LabelledMovie.__qualname__ = __name__, "LabelledMovie"
    return LabelledMovie


def __getattr__(name: str) -> Any:
    # ``mxn.api.LabelledMovie`` exists (for isinstance checks and pickling) without importing facerec early
    if name == "LabelledMovie":
        return _labelled_movie_type()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def label_faces(
    movies: PathLike | Sequence[PathLike],
    gallery: PathLike | None = None,
    model: PathLike | MXNModel | FaceMXN | None = None,
    thresholds: PathLike | None = None,
    alpha: float | None = None,
    movie: str | None = None,
    db: str | os.PathLike | Store | None = None,
    detector: str = "hog",
    stride: int = 1,
    min_face: int = 20,
    chunk_frames: int = 300,
    out: PathLike | None = None,
    srt: PathLike | None = None,
    annotate: PathLike | None = None,
    force: bool = False,
    progress: bool = True,
    on_error: Callable[[str, Exception], None] | None = None,
    html: PathLike | None = None,
) -> MovieResult:
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

    Returns the library's :class:`~mxn.facerec.pipeline.MovieResult` (rows,
    per-video stats, ``summary()``), with ``db``, ``config``,
    ``gallery_people`` (the people the gallery knows) and ``to_dict()``.
    """
    paths = _paths(movies, "movies")
    _tensorflow()
    if html:
        from mxn.reports import write_faces_report
    from mxn.facerec.outputs import ROW_FORMATS, annotate_video, subtitle_cues, write_faces, write_srt
    from mxn.facerec.pipeline import FaceConfig, label_movie
    from mxn.media.video import probe

    _suffix(out, ROW_FORMATS, "out")
    face_model = _face_model(model)
    limits, rate = _face_thresholds(thresholds, face_model, alpha)
    config = FaceConfig(limits, rate, detector, stride, min_face, chunk_frames)
    oracle, people = _oracle(gallery)
    url = database_url(db)
    with _open_store(db, create=True) as store:
        result = label_movie(
            paths, store, face_model, oracle, config, movie=movie, force=force, progress=progress,
            on_error=on_error,
        )  # fmt: skip
    labelled = _labelled_movie_type()(**{f.name: getattr(result, f.name) for f in fields(result)})
    labelled.db, labelled.config, labelled.gallery_people = url, config, tuple(sorted(people))
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
    target_accuracy: float = 0.99,
    alpha: float = 1 / 15,
    detector: str = "hog",
    stride: int = 1,
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
    paths = _paths(videos, "videos")
    for path in paths:
        _existing(path, "video", folder=False)
    _suffix(plot, (".png",), "plot")
    _tensorflow()
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
    width: float = 0.25,
    epochs: int = 30,
    stride: int = 5,
    max_faces: int = 20000,
    detector: str = "hog",
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
    paths = _paths(sources, "sources", what="video, photo or folder")
    if identities and len(paths) != 1:
        raise OptionError("{identities} takes one class-per-folder face folder", mentions=("identities",))
    _tensorflow()
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
        _log(log, f"{len(crops)} faces; embedding them with dlib (the teacher) ...")
        teacher = FaceEmbedder().embed_crops(crops)
        model, report = train_face_mxn_distill(
            crops, teacher, spec, config, source=source or ", ".join(paths), centre=True
        )
    return TrainedFaceModel(model, save_model(model, out), report)
