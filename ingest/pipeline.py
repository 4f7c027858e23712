"""Ingest runs: one video in, objects, labels and clusters committed chunk by chunk.

The journey of a frame: decode (streaming) -> optional static-frame skip ->
background subtraction -> boxes -> square crops -> one batched pass of the
exit runner over the chosen exits -> top-k aggregation -> per-label
clustering -> one SQL transaction per chunk.

A run is split into ranges of frames (:mod:`mxn.ingest.ranges`), each ingested on
its own and clustered on its own; when all are done their clusters are
merged (:mod:`mxn.ingest.merging`) as the run is marked done. One process runs
the ranges one after another; :mod:`mxn.ingest.distributed` hands them to Dask
workers. Both build the same index.

Nothing lost, nothing doubled:

* each video is a run with a status; queries see only ``done`` runs;
* a chunk (objects, labels, cluster updates and the range's resume point)
  commits in one transaction, so a killed run leaves whole chunks only;
  a chunk commits only while its attempt still owns the range;
* the next ingest of that video with the same settings resumes every
  unfinished range at its last chunk boundary, reloading its clustering
  state from SQL; with other settings it is refused, naming them (``force``
  discards the unfinished run and starts over);
* while another process on this machine is indexing the video, a second
  ingest of it is refused at once (no work is done twice); a range taken
  over by another attempt stops this one with the index intact;
* a file that turns out damaged part-way (truncated, corrupt) leaves
  nothing behind: its run is discarded, and its video row when nothing
  else uses it;
* a video already indexed (same content hash and mode) is skipped unless
  ``force`` (the result says when the stored index has other settings, and
  its figures are the stored run's), and a forced re-ingest replaces the old
  index only when it completes.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mxn.images import resize_batch, square_crop
from mxn.media.video import DecodedFrame, VideoError, check_complete, iter_frames, probe
from mxn.modelfile import MXNModel, model_sha
from mxn.storage.records import ObjectRecord, RangeRecord, RunRecord, VideoInfo, range_seq_base
from mxn.storage.store import RangeTakenError, Store
from mxn.storage.vectors import single_thread_faiss

from .aggregation import aggregate_topk, indexing_count, label_sets
from .clustering import IncrementalClusterer, normalise
from .confidence import confident_mask, expected_share, unfamiliar_warning
from .config import IngestConfig, describe_diff, settings_diff
from .extraction import FrameChangeTest, ObjectExtractor
from .merging import plan_merges
from .ranges import COUNTERS, TIMERS, plan_ranges, run_stats

log = logging.getLogger(__name__)


class IngestConflictError(VideoError):
    """A video that cannot be ingested now: another process is at it, or its unfinished run differs.

    Nothing of the index is touched; the message says what to do.
    """


@dataclass
class IngestResult:
    """What happened to one video.

    A ``"skipped"`` video was indexed before: its ``stats`` are the stored
    run's (``stats_stored``), and ``settings_differ`` names the settings in
    which that run differs from the ones asked for (:func:`settings_diff`).
    """

    video: str
    status: str  # "done" | "skipped" | "failed"
    run_id: int | None = None
    resumed_from: int = 0  # frame a resumed run continued at (0: fresh)
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    settings_differ: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. a model out of its depth on this video

    @property
    def stats_stored(self) -> bool:
        """Whether ``stats`` describe an earlier run (the video was skipped), not work done now."""
        return self.status == "skipped"

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "status": self.status,
            "run_id": self.run_id,
            "resumed_from": self.resumed_from,
            "stats": self.stats,
            "stats_stored": self.stats_stored,
            "settings_differ": self.settings_differ,
            "warnings": self.warnings,
            "error": self.error,
        }


class _Timer:
    def __init__(self, stats: dict[str, float], key: str) -> None:
        self.stats, self.key = stats, key

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc) -> None:
        self.stats[self.key] += time.perf_counter() - self.start


def _chunk_frames(
    path: str, info: VideoInfo, config: IngestConfig, start: int, end: int | None
) -> Iterator[tuple[bool, DecodedFrame]]:
    """``(is_warmup, frame)`` from ``start`` to ``end``: the ``warmup`` sampled frames before it first.

    At the very start of a video there are no frames before it, so its first
    ``warmup`` sampled frames are decoded twice: once to warm, once to process.
    """
    warm = config.extractor.warmup * config.stride
    if start == 0:
        for frame in iter_frames(path, 0, warm, config.stride, info.fps):
            yield True, frame
        yield from ((False, f) for f in iter_frames(path, 0, end, config.stride, info.fps))
    else:
        for frame in iter_frames(path, max(0, start - warm), end, config.stride, info.fps):
            yield frame.index < start, frame


@dataclass(frozen=True)
class Detection:
    """The boxes found in one processed frame (none when it was skipped as static)."""

    frame: DecodedFrame
    boxes: np.ndarray


@dataclass(frozen=True)
class ChunkEnd:
    """Every frame below ``next_frame`` has been reported: commit the chunk."""

    next_frame: int


def detect_objects(
    path: str | os.PathLike,
    info: VideoInfo,
    config: IngestConfig,
    start: int = 0,
    stats: dict[str, Any] | None = None,
    end: int | None = None,
) -> Iterator[Detection | ChunkEnd]:
    """Moving objects of every sampled frame from ``start`` to ``end`` (None: the end), chunk by chunk.

    Each chunk gets a fresh background model warmed on the ``warmup``
    sampled frames before it, so what a chunk finds never depends on where
    a run started: a resumed run, or a worker given one range of frames,
    finds exactly the objects an uninterrupted run does. ``stats`` (when
    given) accumulates ``frames``, ``frames_skipped``, ``decode_s`` and
    ``extract_s``. Raises :class:`VideoError` when the video ends early
    (before ``end``, or before the container's frame count).
    """
    c = config
    stats = {} if stats is None else stats
    for key in ("frames", "frames_skipped", "decode_s", "extract_s"):
        stats.setdefault(key, 0)
    shrinker = ObjectExtractor(c.extractor)
    warm_frames: deque[np.ndarray] = deque(maxlen=c.extractor.warmup)  # at the model's scale
    chunk_end, extractor, change = start, None, None
    last_index = start - 1
    frames = _chunk_frames(str(path), info, c, start, end)
    while True:
        with _Timer(stats, "decode_s"):
            item = next(frames, None)
        if item is None:
            break
        is_warm, frame = item
        if not is_warm:
            if frame.index >= chunk_end:  # a new chunk: close the last one, fresh background model
                if extractor is not None:
                    yield ChunkEnd(chunk_end)
                chunk_end = (frame.index // c.chunk_frames + 1) * c.chunk_frames
                with _Timer(stats, "extract_s"):
                    extractor = ObjectExtractor(c.extractor)
                    for image in warm_frames:
                        extractor.warm(image, shrunk=True)
                change = FrameChangeTest() if c.skip_static else None
            last_index = frame.index
            stats["frames"] += 1
            with _Timer(stats, "extract_s"):
                if change is None or change.changed(frame.image):
                    boxes = extractor.extract(frame.image)
                else:
                    stats["frames_skipped"] += 1
                    boxes = np.zeros((0, 4), np.int32)
            yield Detection(frame, boxes)
        warm_frames.append(shrinker.shrink(frame.image))
    check_complete(info, last_index + 1, tolerance=c.stride + 2, until=end)
    if start == 0 and last_index < 1 and (end is None or end > 1):
        raise VideoError(
            f"{path}: a single frame (an image?): ingest finds objects that move, which takes at least two"
        )
    if extractor is not None:
        yield ChunkEnd(last_index + 1)


def attempt_owner() -> str:
    """A name for one attempt at a range: host, process and a random tag (unique per call)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def live_holder(owner: str | None) -> int | None:
    """The process id of another live process on this machine that ``owner`` (an attempt) names.

    None when the attempt is this process's, another machine's (nothing to
    ask), or its process has ended (killed: a zombie counts as ended).
    """
    parts = (owner or "").rsplit(":", 2)  # host:pid:tag (attempt_owner)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return None
    pid = int(parts[1])
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, another user's
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return pid  # no /proc (not Linux): alive is all we know
    return None if state in ("Z", "X") else pid


class VideoIngest:
    """Ingest of videos into one store with one model (see the module docstring).

    :meth:`ingest` does a whole video in this process. The distributed ingest
    (:mod:`mxn.ingest.distributed`) calls the same three steps itself:
    :meth:`prepare` (here), :meth:`ingest_range` (on the workers, one range
    each) and :meth:`finish` (here), so both build the same index.
    """

    def __init__(
        self,
        store: Store,
        model: MXNModel,
        config: IngestConfig,
        progress: bool = True,
        on_chunk: Callable[[int], None] | None = None,
    ) -> None:
        if model.spec.head != "classification":
            raise ValueError("ingest needs a classification model (its exits give the labels)")
        self.store, self.model, self.progress = store, model, progress
        self.config = config.resolve(model.spec.num_exits)
        self.runner = model.runner(batch_size=self.config.batch_size)
        thresholds = model.thresholds or [None] * model.spec.num_exits
        self._thresholds = [thresholds[e] for e in self.config.exits or ()]  # of the exits run, in order
        self.sha = model_sha(model)
        self.on_chunk = on_chunk  # called with each committed chunk end (tests kill runs here)

    # -- run bookkeeping ----------------------------------------------------

    def differences(self, run: RunRecord) -> dict[str, dict[str, Any]]:
        """Where ``run``'s settings and model differ from this ingest's (:func:`settings_diff`)."""
        diff = settings_diff(run.config, self.config.index_key())
        if run.model_sha != self.sha:
            diff["model"] = {"stored": run.model_sha[:12], "asked": self.sha[:12]}
        return diff

    def prepare(
        self, info: VideoInfo, force: bool = False, single_process: bool = False
    ) -> tuple[RunRecord, str]:
        """The run to work on and what to do with it: ``"skipped"``, ``"resume"`` or ``"start"``.

        A new run is split into ranges of ``range_frames`` frames. An
        unfinished run resumes only with its own settings and model; with
        others it raises :class:`IngestConflictError` naming them, unless
        ``force`` (then it is discarded). With ``single_process`` (a whole
        video in this process), a run another live process on this machine
        holds raises :class:`IngestConflictError` too, before any work.
        """
        video = self.store.add_video(info)
        runs = self.store.runs(video.id)
        mine = [r for r in runs if r.mode == self.config.mode]
        if not force and any(r.status == "done" for r in mine):
            done = [r for r in mine if r.status == "done"][-1]
            return done, "skipped"
        running = [r for r in mine if r.status == "running"]
        if single_process:
            for run in running:
                holders = sorted({p for r in self.store.ranges(run.id) if r.status == "running"
                                  and (p := live_holder(r.owner)) is not None})  # fmt: skip
                if holders:
                    raise IngestConflictError(
                        f"another process (pid {', '.join(map(str, holders))}) is indexing this video "
                        "right now; the index is safe: let it finish (or stop it and run this again "
                        "to resume its work)"
                    )
        for run in running:
            if not self.differences(run):
                return run, "resume"
        if running and not force:
            last = running[-1]
            done_frames = sum(r.next_frame - r.start_frame for r in self.store.ranges(last.id))
            raise IngestConflictError(
                f"an unfinished ingest of this video (run {last.id}, {done_frames} frames "
                f"indexed) has other settings: {describe_diff(self.differences(last))}; run again "
                "with its settings to resume it, or add --force to discard it and start over with these"
            )
        for run in mine:
            if run.status != "done":
                log.info("discarding unfinished run %d of %s (other settings or failed)", run.id, info.name)
                self.store.discard_run(run.id)
        ranges = plan_ranges(info.frame_count, self.config.range_frames)
        return self.store.start_run(
            video.id, self.config.mode, self.config.index_key(), self.sha, ranges
        ), "start"

    def ingest(self, path: str | os.PathLike, force: bool = False) -> IngestResult:
        """Index one video, range after range; raises :class:`VideoError` for unreadable files."""
        path = str(path)
        info = probe(path)
        run, action = self.prepare(info, force, single_process=True)
        if action == "skipped":
            return IngestResult(
                info.name, "skipped", run.id, stats=run.stats, settings_differ=self.differences(run)
            )
        ranges = self.store.ranges(run.id)
        pending = [r for r in ranges if r.status != "done"]
        resumed_from = pending[0].next_frame if action == "resume" and pending else 0
        sampled = -(-(info.frame_count or 0) // self.config.stride) or None
        done_frames = sum(-(-(r.next_frame - r.start_frame) // self.config.stride) for r in ranges)
        bar = tqdm(total=sampled, initial=done_frames, desc=f"ingest {info.name}", unit="frame",
                   disable=not self.progress)  # fmt: skip
        try:
            for r in pending:
                self.ingest_range(path, info, run, r.index, bar=bar)
        except IngestConflictError:
            raise  # the run is another process's now: leave it to it
        except VideoError:
            # a damaged file fails the same way every time: nothing of it is kept (a kill is resumed)
            self.store.discard_run(run.id, forget_video=True)
            raise
        finally:
            bar.close()
        return self.finish(run, info.name, resumed_from)

    def finish(
        self, run: RunRecord, name: str, resumed_from: int = 0, extra: dict[str, Any] | None = None
    ) -> IngestResult:
        """Merge the ranges' clusters and mark the run done (one transaction); ``extra`` joins the stats."""
        ranges = self.store.ranges(run.id)
        stats = run_stats(ranges)
        merges = []
        clusters = sum(int(r.stats.get("clusters", 0)) for r in ranges)
        if len(ranges) > 1:
            every = self.store.load_clusters(run.id, active_only=False, crops=False)
            merges = plan_merges(every, self.config.cluster_threshold)
        absorbed = sum(len(m.absorbed) for m in merges)
        stats |= {"clusters": clusters - absorbed, "clusters_merged": absorbed, **(extra or {})}
        done = self.store.finish_run(run.id, stats, merges)
        expected = expected_share(self.model.calibration, self.config.exits or ())
        warning = unfamiliar_warning(int(stats.get("confident", 0)), int(stats["objects"]), expected)
        if warning:
            log.info("%s: %s", name, warning)
        return IngestResult(
            name,
            "done",
            done.id,
            resumed_from=resumed_from,
            stats=stats,
            warnings=[warning] if warning else [],
        )

    # -- the work -----------------------------------------------------------

    def ingest_range(
        self, path: str, info: VideoInfo, run: RunRecord, index: int, bar: tqdm | None = None
    ) -> dict[str, Any]:
        """Claim range ``index`` of ``run``, ingest it from its resume point, mark it done; its stats.

        Raises :class:`VideoError` when the video cannot be decoded through
        the range (the range stays unfinished, its committed chunks kept).
        """
        owner = attempt_owner()
        rng = self.store.claim_range(run.id, index, owner)
        try:
            stats = self._process(path, info, run, rng, owner, bar)
            self.store.finish_range(run.id, index, stats, owner)
        except RangeTakenError as err:
            raise IngestConflictError(
                f"another process took over this video's ingest (range {index} of run {run.id}) "
                "and goes on with it; the index is safe: the chunks this process committed are kept"
            ) from err
        return stats

    def _process(
        self, path: str, info: VideoInfo, run: RunRecord, rng: RangeRecord, owner: str, bar: tqdm | None
    ) -> dict[str, Any]:
        c = self.config
        stats: dict[str, Any] = {k: rng.stats.get(k, 0) for k in COUNTERS}
        stats |= {k: rng.stats.get(k, 0.0) for k in (*TIMERS, "seconds")}
        seconds_before, began = stats["seconds"], time.perf_counter()
        base = range_seq_base(rng.index)
        restored = self.store.load_clusters(run.id, active_only=False, range_index=rng.index)
        chunk = _Chunk(
            IncrementalClusterer(c.cluster_threshold, c.max_clusters, restored, next_seq=base),
            next_seq=int(rng.stats.get("next_object_seq", base)),
        )
        commit = _Committer(self.store, run.id, rng.index, owner, self.on_chunk)
        side = c.crop_side(self.model.spec.input_size)
        for event in detect_objects(path, info, c, rng.next_frame, stats, end=rng.end_frame):
            if isinstance(event, ChunkEnd):
                self._classify(chunk, stats)
                stats["seconds"] = seconds_before + time.perf_counter() - began
                commit(chunk, stats, event.next_frame)
                continue
            if bar is not None:
                bar.update(1)
            frame = event.frame
            for box in event.boxes:
                box = tuple(int(v) for v in box)
                crop = square_crop(frame.image, box, side, expand=c.crop_expand)
                chunk.waiting.append((frame.index, frame.time, box, crop))
            if len(chunk.waiting) >= c.batch_size:
                self._classify(chunk, stats)
        stats["seconds"] = seconds_before + time.perf_counter() - began
        stats["next_object_seq"] = chunk.next_seq
        stats["clusters"] = chunk.clusterer.next_seq - base
        return stats

    def _classify(self, chunk: _Chunk, stats: dict[str, Any]) -> None:
        """Label, index and cluster the crops waiting in ``chunk``: one batch through the exit runner.

        Crops go through the model as soon as a batch is full, so memory
        holds a batch of crops and the chunk's object records, never
        decoded frames, whatever the chunk length.
        """
        if not chunk.waiting:
            return
        c = self.config
        with _Timer(stats, "model_s"):
            crops = resize_batch([crop for *_, crop in chunk.waiting], self.model.spec.input_size)
            result = self.runner.all_exits(crops, exits=c.exits, features_exit=c.cluster_exit)
            mask, scores = aggregate_topk(result.outputs, c.topk)
            sure = confident_mask(result.outputs, self._thresholds)
            labels = label_sets(mask, scores, self.model.classes)
            features = normalise(result.features)
        with _Timer(stats, "cluster_s"), single_thread_faiss():
            for (frame, at, box, crop), object_labels, feature in zip(
                chunk.waiting, labels, features, strict=True
            ):
                seq = chunk.next_seq
                chunk.objects.append(ObjectRecord(seq, frame, at, box, object_labels, feature))
                chunk.clusterer.add(seq, at, object_labels, feature, crop)
                chunk.next_seq += 1
        stats["objects"] += len(chunk.waiting)
        stats["indexing"] += indexing_count(mask)
        stats["confident"] += int(sure.sum())
        chunk.waiting = []


@dataclass
class _Chunk:
    """What one chunk has found so far: crops waiting for the model, then object records."""

    clusterer: IncrementalClusterer
    next_seq: int  # the number the next object gets (runs on over resumes)
    waiting: list[tuple[int, float, tuple[int, ...], np.ndarray]] = field(default_factory=list)
    objects: list[ObjectRecord] = field(default_factory=list)


@dataclass
class _Committer:
    """Stores classified chunks of one range for one attempt, in one transaction each."""

    store: Store
    run_id: int
    index: int
    owner: str
    on_chunk: Callable[[int], None] | None

    def __call__(self, chunk: _Chunk, stats: dict[str, Any], next_frame: int) -> None:
        """Objects, cluster changes and the range's resume point, atomically."""
        stats["next_object_seq"] = chunk.next_seq
        stats["clusters"] = chunk.clusterer.next_seq - range_seq_base(self.index)
        with _Timer(stats, "store_s"):
            self.store.commit_chunk(
                self.run_id,
                next_frame,
                chunk.objects,
                chunk.clusterer.take_changes(),
                stats,
                range_index=self.index,
                owner=self.owner,
            )
        chunk.objects = []
        if self.on_chunk is not None:
            self.on_chunk(next_frame)


def ingest_videos(
    paths: Sequence[str | os.PathLike],
    store: Store,
    model: MXNModel,
    config: IngestConfig,
    force: bool = False,
    progress: bool = True,
) -> list[IngestResult]:
    """Ingest every video in this process; a bad one is reported as failed and the others still run."""
    runner = VideoIngest(store, model, config, progress=progress)
    results = []
    for path in paths:
        try:
            results.append(runner.ingest(path, force=force))
        except VideoError as err:
            results.append(IngestResult(Path(path).name, "failed", error=str(err)))
    return results
