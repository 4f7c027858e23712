"""The traffic jobs: ``mxn ingest`` (index videos), ``mxn crops``, ``mxn query`` and ``mxn tune query``.

Their defaults are the stages' own: an ingest's settings are
:class:`mxn.ingest.config.IngestConfig`'s fields (the background model's,
:class:`~mxn.ingest.config.ExtractorConfig`'s), a query's modes and the
tuner's defaults are :mod:`mxn.query.settings`', the targets
:mod:`mxn.targets`'. Those modules import nothing heavy; the stages' working
modules (OpenCV, TensorFlow, SQL) load inside each job.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mxn.ingest.config import (
    EXPORT_BLOCK_SECONDS,
    EXPORT_EVERY,
    EXPORT_SEED,
    ExtractorConfig,
    IngestConfig,
)
from mxn.query.settings import (
    DEFAULT_ALLOW_REJECT,
    DEFAULT_HOLDOUT,
    DEFAULT_INDEX_RECALL_SHARE,
    DEFAULT_INDEX_STAGE,
    DEFAULT_MODE,
    DEFAULT_PER_LABEL,
    DEFAULT_POOLED_PRECISION,
    DEFAULT_SEED,
    INDEX_MODES,
    MODES,
)
from mxn.targets import CONFIDENCE, TARGET_PRECISION, TARGET_RECALL

from .options import (
    Log,
    OptionError,
    PathLike,
    as_paths,
    check_suffix,
    database_url,
    int_list,
    is_loaded,
    load_tensorflow,
    open_store,
    parse_time,
    ready_model,
)

if TYPE_CHECKING:
    from mxn.ingest.pipeline import IngestResult
    from mxn.modelfile import MXNModel
    from mxn.query.result import QueryResult
    from mxn.query.tuning import TuningResult
    from mxn.storage.store import Store


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
    mode: str = IngestConfig.mode,
    exits: str | Sequence[int] | None = IngestConfig.exits,
    topk: int = IngestConfig.topk,
    cluster_exit: int | None = IngestConfig.cluster_exit,
    cluster_threshold: float = IngestConfig.cluster_threshold,
    max_clusters: int = IngestConfig.max_clusters,
    stride: int = IngestConfig.stride,
    warmup: int = ExtractorConfig.warmup,
    min_area: int = ExtractorConfig.min_area,
    skip_static: bool = IngestConfig.skip_static,
    chunk_frames: int = IngestConfig.chunk_frames,
    range_frames: int = IngestConfig.range_frames,
    crop_size: int = IngestConfig.crop_size,
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
    paths = as_paths(videos, "videos")
    if workers is not None and scheduler is not None:
        raise OptionError(
            "give {workers} (a local cluster) or {scheduler} (an existing one), not both",
            mentions=("workers", "scheduler"),
        )
    if workers is not None and workers < 1:
        raise OptionError(f"must be >= 1, got {workers}", "workers")
    distributed = workers is not None or scheduler is not None
    if distributed and (is_loaded(model) or is_loaded(db)):
        raise OptionError(
            "with {workers} or {scheduler}, give {model} as a file and {db} as a URL: each worker "
            "loads the model and opens the database itself",
            mentions=("workers", "scheduler", "model", "db"),
        )
    load_tensorflow()
    if html:
        from mxn.reports import write_ingest_report  # before the work: a missing package fails now
    from mxn.defaults import default_model_path
    from mxn.ingest.pipeline import ingest_videos

    config = IngestConfig(
        mode=mode,
        exits=int_list(exits, "exits"),
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
    loaded = ready_model(model, default)
    resolved = config.resolve(loaded.spec.num_exits)  # an exit the model lacks fails before any video
    url = database_url(db)
    if not distributed:
        with open_store(db, create=True) as store:
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
        with open_store(db) as store:
            write_ingest_report(html, store, done)
    return done


def index_crops(
    out: PathLike,
    db: str | os.PathLike | Store | None = None,
    gt: PathLike | MXNModel | None = None,
    index: str = IngestConfig.mode,
    video: str | None = None,
    every: int = EXPORT_EVERY,
    block_seconds: float = EXPORT_BLOCK_SECONDS,
    seed: int = EXPORT_SEED,
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
    if index not in INDEX_MODES:
        raise OptionError(f"index must be {' or '.join(INDEX_MODES)}, got {index!r}")
    with open_store(db) as store:  # an existing mxn database, or an error before the model loads
        load_tensorflow()
        from mxn.ingest.training_set import export_training_set
        from mxn.query.executor import find_videos

        gt_model = ready_model(gt, "gt")
        video_id = find_videos(store, video)[0].id if video not in (None, "all") else None
        return export_training_set(store, out, gt_model, index, video_id, every, block_seconds, seed=seed,
                                   progress=progress)  # fmt: skip


def _query_models(gt: PathLike | MXNModel | None, qmodel: PathLike | MXNModel | None, need_query: bool):
    """The ground-truth CNN and (when ``need_query``) the query MXN: as given, or the bundled ones."""
    return ready_model(gt, "gt"), (ready_model(qmodel, "query") if need_query else None)


def query(
    label: str,
    video: str | None = "all",
    start: float | str | None = None,
    end: float | str | None = None,
    db: str | os.PathLike | Store | None = None,
    gt: PathLike | MXNModel | None = None,
    qmodel: PathLike | MXNModel | None = None,
    thresholds: PathLike | None = None,
    mode: str = DEFAULT_MODE,
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
    if mode not in MODES:  # the executor says the same, but only after both models have loaded
        raise OptionError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}", "mode")
    begin, finish = parse_time(start, "start"), parse_time(end, "end")
    check_suffix(out, (".json", ".csv"), "out")
    check_suffix(sheet, (".png",), "sheet")
    with open_store(db) as store:  # an existing mxn database, or an error before any model loads
        load_tensorflow()
        if html:
            from mxn.reports import write_query_report
        from mxn.query.executor import QueryExecutor
        from mxn.query.sheet import contact_sheet
        from mxn.query.thresholds import load_thresholds

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
    target_precision: float = TARGET_PRECISION,
    target_recall: float = TARGET_RECALL,
    confidence: float = CONFIDENCE,
    holdout: float = DEFAULT_HOLDOUT,
    seed: int = DEFAULT_SEED,
    reject: bool = DEFAULT_ALLOW_REJECT,
    per_label: bool = DEFAULT_PER_LABEL,
    out: PathLike | None = "query-thresholds.json",
    plot: PathLike | None = None,
    progress: bool = True,
    pooled_precision: bool = DEFAULT_POOLED_PRECISION,
    index_stage: bool = DEFAULT_INDEX_STAGE,
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
    :data:`mxn.query.settings.DEFAULT_INDEX_RECALL_SHARE`). Writes the thresholds
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
    check_suffix(plot, (".png",), "plot")
    with ExitStack() as opened:  # every index an existing mxn database, before any model loads
        stores = [opened.enter_context(open_store(source)) for source in (db, *also)]
        load_tensorflow()
        from mxn.query.tuning import (
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
