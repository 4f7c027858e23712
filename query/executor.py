"""Label queries (docs/ARCHITECTURE.md section 5; dissertation section 5.3.1.2).

A query for a label takes the clusters indexed under it (the candidates) and
asks of each cluster's representative crop "is it the label?":

* ``mxn``: the index's stored score may reject a candidate first, for free;
  the query MXN answers the rest in early-exit mode with per-exit accept /
  reject thresholds (:mod:`mxn.query.thresholds`); only the candidates no exit
  decided go to the ground-truth CNN, in batches.
* ``focus``: the ground-truth CNN answers for every candidate (Focus).
* ``all``: no index at all: the ground-truth CNN runs on every stored
  object of the videos and time range, its crops cut from the decoded
  video (what a user does without an index; the baseline of Tables 5.12-5.14).

An accepted cluster contributes its members (within the time range) to the
answer. Verdicts are cached in SQL per (cluster, label, model), so asking
again runs no CNN: ``gt:<sha>`` verdicts are shared by the ``mxn`` and
``focus`` modes, ``mxn:<sha>:<thresholds>`` ones belong to one query model
with one set of thresholds.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from mxn.images import resize_batch, square_crop
from mxn.media.video import VideoError, read_frames
from mxn.modelfile import MXNModel, model_sha
from mxn.storage.crop_codec import CropFormatError, decode_crop
from mxn.storage.records import INDEX_STAGE, ClusterRecord, StoredObject, Verdict, VideoRecord
from mxn.storage.store import Store

from .accuracy import judge
from .result import DEFAULT_MAX_GAP, Hit, QueryResult, QueryStats, VideoAnswer
from .settings import DEFAULT_MODE, INDEX_MODES, MODES
from .thresholds import QueryThresholds, check_for_model, index_scorer_of

log = logging.getLogger(__name__)


class QueryError(ValueError):
    """A query that cannot be answered as asked (unknown label or video, bad range, no index)."""


def find_videos(store: Store, video: str | None) -> list[VideoRecord]:
    """The videos ``video`` names (a name, path, id or hash prefix); ``None`` or ``"all"``: every one."""
    everything = store.videos()
    if video in (None, "all"):
        return everything
    found = [
        v for v in everything if video in (v.name, v.path, str(v.id)) or v.content_hash.startswith(video)
    ]
    if not found:
        names = ", ".join(sorted({v.name for v in everything})) or "none"
        raise QueryError(f"no video {video!r} in the index; it has: {names}")
    if len(found) > 1:
        raise QueryError(
            f"{len(found)} videos are called {video!r}; name one by id or hash: "
            + ", ".join(f"{v.id} ({v.content_hash[:12]})" for v in found)
        )
    return found


#: Crops per batch of the query MXN's cascade. Each stage of each batch costs a fixed graph call,
#: gather and copy, so the small network runs in larger batches than the GT-CNN: on the bundled
#: query MXN, 0.40 ms per candidate at 64, 0.26 at 256 (running every exit at once: 0.29-0.32);
#: on a faster machine (2026-12-04), 0.104 at 256 and 0.088 at 1024 on 3,000 downtown truck
#: candidates, and every downtown label's query 8% faster (docs/BENCHMARKS.md).
CASCADE_BATCH = 1024

#: Candidates decided together: their crops are read and decoded once for both CNNs, then dropped,
#: so a query's memory does not grow with the index.
CHUNK_CANDIDATES = 2048


class _Representatives:
    """The decoded representative crops of one chunk of candidates.

    The cluster lookup skipped the crops; they are read from SQL and decoded
    on first use, so the candidates the query MXN leaves undecided reach the
    GT-CNN without a second read or a second decode.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.images: dict[int, np.ndarray] = {}  # cluster id -> RGB crop at its stored size

    def at(self, clusters: Sequence[ClusterRecord], size: int) -> np.ndarray:
        """The clusters' crops resized to ``size`` px, as one batch."""
        missing = [c for c in clusters if c.id not in self.images]
        unread = [c.id for c in missing if not c.representative_crop]
        stored = self.store.cluster_crops(unread) if unread else {}
        for c in missing:
            try:
                self.images[c.id] = decode_crop(c.representative_crop or stored[c.id])
            except CropFormatError as err:
                raise QueryError(f"cluster {c.id}: {err}") from None
        return resize_batch([self.images[c.id] for c in clusters], size)


@dataclass
class _Decisions:
    """Per candidate cluster: accepted or not, and who decided."""

    accepted: dict[int, str]  # cluster id -> "exit i" | "gt-cnn"
    stats: QueryStats


class QueryExecutor:
    """Answers label queries over one store.

    Args:
        store: the index.
        gt_model: the ground-truth CNN (its last exit is the reference answer).
        query_model: the query MXN (needed for ``mxn`` mode).
        thresholds: when its exits may decide (default: from the query model's card).
        batch_size: crops per GT-CNN batch.
        cascade_batch_size: crops per batch of the query MXN's early-exit cascade.
        use_cache: read and write cached verdicts (off: every query pays in full,
            as the benchmarks need).
        max_gap: seconds between frames that still belong to one segment.
        progress: show progress bars for long work (``all`` mode decodes video).
        chunk_size: candidates decided together (bounds the decoded crops held in memory).
        warn: called with each warning as it arises (the command line prints it at once);
            every answer also lists its warnings (:attr:`QueryResult.warnings`).
    """

    def __init__(
        self,
        store: Store,
        gt_model: MXNModel,
        query_model: MXNModel | None = None,
        thresholds: QueryThresholds | None = None,
        batch_size: int = 64,
        use_cache: bool = True,
        max_gap: float = DEFAULT_MAX_GAP,
        progress: bool = False,
        chunk_size: int = CHUNK_CANDIDATES,
        cascade_batch_size: int = CASCADE_BATCH,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if chunk_size < 1 or cascade_batch_size < 1:
            raise QueryError(
                "chunk_size and cascade_batch_size must be at least 1, "
                f"got {chunk_size} and {cascade_batch_size}"
            )
        if gt_model.spec.head != "classification":
            raise QueryError("the ground-truth CNN must be a classification model")
        if query_model is not None and query_model.spec.head != "classification":
            raise QueryError("the query MXN must be a classification model")
        self.store, self.gt_model, self.query_model = store, gt_model, query_model
        self.batch_size, self.use_cache, self.max_gap, self.progress = (
            batch_size,
            use_cache,
            max_gap,
            progress,
        )
        self.chunk_size, self.warn = chunk_size, warn
        self._warnings: list[str] = []  # the running query's
        self._cache_refusal: str | None = None  # why verdicts cannot be written (checked once)
        self._cache_checked = False
        self.gt_key = f"gt:{model_sha(gt_model)[:16]}"
        self.thresholds = thresholds
        self.mxn_key = None
        if query_model is not None:
            sha = model_sha(query_model)
            self.thresholds = thresholds or QueryThresholds.from_model(query_model)
            check_for_model(self.thresholds, query_model, sha, "thresholds")
            self.mxn_key = f"mxn:{sha[:16]}:{self.thresholds.key()}"
        self._scorers: dict[int, str] = {}  # run id -> index_scorer_of(run)
        self._gt_runner = gt_model.runner(batch_size)
        self._mxn_runner = query_model.runner(cascade_batch_size) if query_model is not None else None

    # -- the query ----------------------------------------------------------

    def run(
        self,
        label: str,
        video: str | None = None,
        start: float | None = None,
        end: float | None = None,
        mode: str = DEFAULT_MODE,
        index_mode: str | None = None,
    ) -> QueryResult:
        """Answer "where is ``label``?" in ``video`` (name; ``None`` or ``"all"``: every video)."""
        began = time.perf_counter()
        self._warnings = []
        if mode not in MODES:
            raise QueryError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode == "mxn" and self.query_model is None:
            raise QueryError("mxn mode needs a query model")
        if start is not None and end is not None and end < start:
            raise QueryError(f"the range ends ({end} s) before it starts ({start} s)")
        index_mode = index_mode or self._default_index_mode()
        if index_mode not in INDEX_MODES:
            raise QueryError(f"unknown index mode {index_mode!r}; choose one of {', '.join(INDEX_MODES)}")
        self._check_label(label, index_mode)
        self._check_cache()
        if mode == "mxn":
            self._check_query_model(label)
        videos = self._videos(video)
        video_id = videos[0].id if video not in (None, "all") else None
        if mode == "all":
            accepted_objects, stats = self._run_all(label, video_id, start, end, index_mode)
        else:
            candidates = self.store.clusters(label, video_id, start, end, mode=index_mode, crops=False)
            decisions = self._decide(label, candidates, mode)
            stats = decisions.stats
            accepted_objects = self._members(decisions.accepted, start, end)
        answers = self._answers(videos, accepted_objects)
        stats.seconds = time.perf_counter() - began
        result = QueryResult(label, mode, index_mode, start, end, answers, stats, warnings=self._warnings)
        result.accuracy = judge(self.store, result, video_id)
        return result

    # -- checks -------------------------------------------------------------

    def _default_index_mode(self) -> str:
        modes = {r.mode for r in self.store.runs(status="done")}
        if "mxn" in modes or "focus" not in modes:
            return "mxn"
        return "focus"

    def _check_label(self, label: str, index_mode: str) -> None:
        known = self.store.labels(mode=index_mode)
        if label in known:
            if label not in self.gt_model.classes:
                raise QueryError(
                    f"the ground-truth CNN does not know the label {label!r} "
                    f"(it knows: {', '.join(self.gt_model.classes)}); pass --gt with a model that does"
                )
            return
        if label in self.gt_model.classes:
            return  # a label nothing was indexed under: a valid, empty answer
        listed = ", ".join(known) if known else "none yet: ingest a video first (mxn ingest VIDEO)"
        raise QueryError(f"unknown label {label!r}; the index knows: {listed}")

    def _warn(self, message: str) -> None:
        self._warnings.append(message)
        log.info(message)
        if self.warn is not None:
            self.warn(message)

    def _check_cache(self) -> None:
        """Before any work: can verdicts be cached here? If not, answer without caching and say so once.

        A database on read-only storage (or a read-only role) can still be
        asked: verdicts already cached are read, new ones are not written.
        """
        if not self.use_cache:
            return
        if not self._cache_checked:
            self._cache_refusal, self._cache_checked = self.store.write_refusal(), True
            if self._cache_refusal is not None:
                self._warn(
                    f"the database is read-only ({self._cache_refusal}): answering without caching "
                    "new verdicts, so asking again pays again"
                )

    @property
    def _caching(self) -> bool:
        return self.use_cache and self._cache_refusal is None

    def _check_query_model(self, label: str) -> None:
        """Say when the query MXN decides nothing for ``label``: every candidate then costs a GT-CNN call."""
        assert self.query_model is not None and self.thresholds is not None
        if label not in self.query_model.classes:
            self._warn(
                f"the query MXN does not know {label!r} (it knows: {', '.join(self.query_model.classes)}): "
                "its exits decide no candidate, which go to the ground-truth CNN as in --mode focus; "
                "give a query model trained on it (--qmodel)"
            )
        elif not self.thresholds.for_label(label).decides:
            self._warn(
                f"nothing may decide {label!r} at the query MXN's thresholds: every candidate goes to "
                "the ground-truth CNN; `mxn tune query` fits thresholds on this index"
            )

    def _videos(self, video: str | None) -> list[VideoRecord]:
        return find_videos(self.store, video)

    # -- deciding candidates ------------------------------------------------

    def _decide(self, label: str, candidates: list[ClusterRecord], mode: str) -> _Decisions:
        """Verdicts chunk by chunk: each chunk's crops are read and decoded once, for both CNNs."""
        stats = QueryStats(candidates=len(candidates))
        accepted: dict[int, str] = {}
        for start in range(0, len(candidates), self.chunk_size):
            chunk = candidates[start : start + self.chunk_size]
            crops = _Representatives(self.store)
            undecided = chunk
            if mode == "mxn":
                verdicts = self._mxn_verdicts(label, chunk, stats, crops)
                undecided = []
                for c in chunk:
                    v = verdicts[c.id]
                    if v.outcome == "undecided":
                        undecided.append(c)
                        continue
                    assert v.exit is not None
                    if v.exit == INDEX_STAGE:
                        stats.decided_by_index += 1
                        continue  # the index stage only rejects
                    stats.decided_per_exit[v.exit] = stats.decided_per_exit.get(v.exit, 0) + 1
                    if v.outcome == "accept":
                        accepted[c.id] = f"exit {v.exit}"
            stats.gt_decided += len(undecided)
            for cid, verdict in self._gt_verdicts(label, undecided, stats, crops).items():
                if verdict.outcome == "accept":
                    accepted[cid] = "gt-cnn"
        stats.accepted = len(accepted)
        stats.rejected = stats.candidates - stats.accepted
        return _Decisions(accepted, stats)

    def _cached(
        self, label: str, candidates: list[ClusterRecord], key: str, stats: QueryStats
    ) -> dict[int, Verdict]:
        if not self.use_cache or not candidates:
            return {}
        found = self.store.verdicts([c.id for c in candidates], label, key)
        stats.cached += len(found)
        return found

    def _mxn_verdicts(
        self, label: str, candidates: list[ClusterRecord], stats: QueryStats, crops: _Representatives
    ) -> dict[int, Verdict]:
        assert self.query_model is not None and self.thresholds is not None and self.mxn_key is not None
        verdicts = self._cached(label, candidates, self.mxn_key, stats)
        todo = [c for c in candidates if c.id not in verdicts]
        if not todo:
            return verdicts
        thresholds = self.thresholds.for_label(label)
        made = self._index_verdicts(todo, thresholds)
        free = {v.cluster_id for v in made}
        todo = [c for c in todo if c.id not in free]
        last = thresholds.last_deciding_exit
        if todo and (label not in self.query_model.classes or last is None):  # said by _check_query_model
            made += [Verdict(c.id, "undecided", None, 0.0) for c in todo]
        elif todo:
            index = self.query_model.classes.index(label)
            began = time.perf_counter()
            images = crops.at(todo, self.query_model.spec.input_size)
            assert self._mxn_runner is not None
            cascade = self._mxn_runner.cascade(images, thresholds.rule(index), last_exit=last)
            stats.model_seconds += time.perf_counter() - began
            stats.mxn_calls += len(todo)
            for c, exit_taken, outputs in zip(todo, cascade.exit_taken, cascade.outputs, strict=True):
                p = float(outputs[index])
                if exit_taken < 0:
                    made.append(Verdict(c.id, "undecided", None, p))
                    continue
                accepted, _ = thresholds.outcomes(int(exit_taken), np.array([p]))
                made.append(Verdict(c.id, "accept" if accepted[0] else "reject", int(exit_taken), p))
        if self._caching:
            self.store.save_verdicts(label, self.mxn_key, made)
        return verdicts | {v.cluster_id: v for v in made}

    def _index_verdicts(self, candidates: list[ClusterRecord], thresholds: QueryThresholds) -> list[Verdict]:
        """Rejections by the index's own score: no crop read, no CNN run.

        Only for candidates whose run's scores come from the scorer the
        thresholds were tuned on; the others go on to the exits.
        """
        if not np.isfinite(thresholds.index_reject_limit) or not candidates:
            return []
        wanted = self.thresholds.index_scorer if self.thresholds is not None else None
        scored = [
            c for c in candidates
            if c.representative_score is not None
            and (wanted is None or self._scorer(c.run_id) == wanted)
        ]  # fmt: skip
        scores = np.array([c.representative_score for c in scored], np.float64)
        rejected = thresholds.index_rejects(scores)
        return [
            Verdict(c.id, "reject", INDEX_STAGE, float(p))
            for c, p, no in zip(scored, scores, rejected, strict=True)
            if no
        ]

    def _scorer(self, run_id: int) -> str | None:
        """Who wrote the index scores of run ``run_id`` (:func:`mxn.query.thresholds.index_scorer_of`)."""
        if run_id not in self._scorers:
            self._scorers.update({r.id: index_scorer_of(r) for r in self.store.runs()})
        return self._scorers.get(run_id)

    def _gt_verdicts(
        self, label: str, candidates: list[ClusterRecord], stats: QueryStats, crops: _Representatives
    ) -> dict[int, Verdict]:
        verdicts = self._cached(label, candidates, self.gt_key, stats)
        todo = [c for c in candidates if c.id not in verdicts]
        if not todo:
            return verdicts
        began = time.perf_counter()
        probabilities = self._gt_probabilities(crops.at(todo, self.gt_model.spec.input_size))
        stats.model_seconds += time.perf_counter() - began
        stats.gt_calls += len(todo)
        index = self.gt_model.classes.index(label)
        top = probabilities.argmax(axis=1)
        made = [
            Verdict(c.id, "accept" if top[k] == index else "reject", None, float(probabilities[k, index]))
            for k, c in enumerate(todo)
        ]
        if self._caching:
            self.store.save_verdicts(label, self.gt_key, made)
        return verdicts | {v.cluster_id: v for v in made}

    def _gt_probabilities(self, crops: np.ndarray) -> np.ndarray:
        last = self.gt_model.spec.num_exits - 1
        return self._gt_runner.all_exits(crops, exits=[last]).output(last)

    # -- the answer ---------------------------------------------------------

    def _members(
        self, accepted: dict[int, str], start: float | None, end: float | None
    ) -> list[tuple[StoredObject, int | None, str]]:
        out = []
        for cid, members in self.store.members(accepted).items():
            for obj in members:
                if (start is None or obj.time >= start) and (end is None or obj.time <= end):
                    out.append((obj, cid, accepted[cid]))
        return out

    def _answers(
        self, videos: list[VideoRecord], accepted: list[tuple[StoredObject, int | None, str]]
    ) -> list[VideoAnswer]:
        by_video: dict[int, list[Hit]] = defaultdict(list)
        for obj, cid, decided_by in accepted:
            by_video[obj.video_id].append(Hit(obj.frame, obj.time, obj.box, obj.id, cid, decided_by))
        answers = []
        for v in videos:
            if v.id in by_video:
                hits = sorted(by_video[v.id], key=lambda h: (h.frame, h.object_id))
                answers.append(VideoAnswer(v.id, v.name, v.path, v.fps, hits, self.max_gap))
        return answers

    # -- no index: the GT-CNN on every object -------------------------------

    def _run_all(
        self, label: str, video_id: int | None, start: float | None, end: float | None, index_mode: str
    ) -> tuple[list[tuple[StoredObject, int | None, str]], QueryStats]:
        objects = self.store.objects(video_id, start, end, mode=index_mode)
        stats = QueryStats(objects_checked=len(objects))
        runs = {r.id: r for r in self.store.runs(status="done")}
        videos = {v.id: v for v in self.store.videos()}
        index = self.gt_model.classes.index(label)
        size = self.gt_model.spec.input_size
        accepted: list[tuple[StoredObject, int | None, str]] = []
        by_video: dict[int, list[StoredObject]] = defaultdict(list)
        for obj in objects:
            by_video[obj.video_id].append(obj)
        bar = tqdm(total=len(objects), desc=f"GT-CNN on every object ({label})", unit="object",
                   disable=not self.progress)  # fmt: skip
        try:
            for vid, objs in by_video.items():
                video = videos[vid]
                by_frame: dict[int, list[StoredObject]] = defaultdict(list)
                for obj in objs:
                    by_frame[obj.frame].append(obj)
                batch: list[StoredObject] = []
                crops: list[np.ndarray] = []
                try:
                    for frame in read_frames(video.path, by_frame, fps=video.fps):
                        for obj in by_frame[frame.index]:
                            expand = float(runs[obj.run_id].config.get("crop_expand", 0.1))
                            crops.append(square_crop(frame.image, obj.box, size, expand=expand))
                            batch.append(obj)
                        if len(batch) >= self.batch_size:
                            accepted += self._judge_objects(batch, crops, index, stats)
                            bar.update(len(batch))
                            batch, crops = [], []
                except VideoError as err:
                    raise QueryError(
                        f"all mode decodes the indexed videos, and {video.name} cannot be read: {err}"
                    ) from err
                accepted += self._judge_objects(batch, crops, index, stats)
                bar.update(len(batch))
        finally:
            bar.close()
        stats.accepted = len(accepted)
        return accepted, stats

    def _judge_objects(
        self, objects: list[StoredObject], crops: list[np.ndarray], index: int, stats: QueryStats
    ) -> list[tuple[StoredObject, int | None, str]]:
        if not objects:
            return []
        began = time.perf_counter()
        top = self._gt_probabilities(np.stack(crops)).argmax(axis=1)
        stats.model_seconds += time.perf_counter() - began
        stats.gt_calls += len(objects)
        return [(obj, None, "gt-cnn") for obj, t in zip(objects, top, strict=True) if t == index]
