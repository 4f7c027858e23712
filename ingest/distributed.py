"""Distributed ingest: the ranges of every video handed to Dask workers, one shared database.

The client (the process that runs ``mxn ingest --workers N``) does the
bookkeeping and the workers do the work:

1. the client probes each video and prepares its run exactly as a
   single-process ingest does (:meth:`mxn.ingest.pipeline.VideoIngest.prepare`): a
   run split into ranges, or the unfinished run to resume;
2. every unfinished range becomes one task; a worker claims the range,
   ingests it from its resume point and commits chunk by chunk into the
   shared database (:meth:`mxn.ingest.pipeline.VideoIngest.ingest_range`);
3. when all ranges of a video are done, the client merges their clusters
   and marks the run done (:meth:`mxn.ingest.pipeline.VideoIngest.finish`).

The index is the one a single process builds with the same settings:
the same ranges, the same objects, the same clusters. A worker that dies
mid-range loses nothing: Dask gives its task to another worker, which
claims the range (the dead attempt can no longer commit) and resumes after
the last chunk the dead one committed.

Workers must reach the database URL and the video files by the same paths
(loopback and one machine for ``--workers``; a shared file system and a
server database for ``--scheduler``). SQLite serves a local cluster (its
writers take turns); PostgreSQL is the database for many workers.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mxn.media.video import VideoError, probe
from mxn.modelfile import load_model
from mxn.storage.records import RunRecord, VideoInfo
from mxn.storage.store import Store

from .config import IngestConfig
from .pipeline import IngestResult, VideoIngest

log = logging.getLogger(__name__)

#: Seconds between progress updates (read from the ranges' commits in SQL).
POLL_S = 0.5


def _require_dask() -> Any:
    try:
        import distributed
    except ImportError as err:  # pragma: no cover - a dependency of mxn
        raise RuntimeError(
            "distributed ingest needs Dask: pip install 'dask[distributed]' (a dependency of mxn)"
        ) from err
    return distributed


def worker_threads(workers: int) -> int:
    """Threads each worker's TensorFlow may use so that ``workers`` workers share this machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: on ``scheduler`` (``tcp://host:port``), or on a new local cluster of ``workers``.

    The local cluster listens on 127.0.0.1 only, runs one process per worker
    (TensorFlow and OpenCV hold the GIL too long for threads) with one task
    each, and has no dashboard. Its nannies restart a worker that dies.
    """
    distributed = _require_dask()
    if (workers is None) == (scheduler is None):
        raise ValueError("give either workers (a local cluster) or scheduler (an existing one)")
    if scheduler is not None:
        with distributed.Client(scheduler, timeout="10s") as client:
            yield client
        return
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    threads = str(worker_threads(workers))
    # Dask's nannies set OMP/MKL/OpenBLAS to 1 thread; a worker here owns its share of the cores
    env = {"MXN_WORKER_THREADS": threads, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env |= dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), threads)
    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            env=env,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@dataclass(frozen=True)
class RangeTask:
    """Everything a worker needs to ingest one range (plain, picklable values)."""

    url: str
    model_path: str
    config: IngestConfig
    path: str
    info: VideoInfo
    run_id: int
    index: int


#: Stands in for a video in the warm-up task (which opens no video).
_NO_VIDEO = VideoInfo("", "", "", 1.0, 1, 1, 0, 0.0)

#: One ingest job per (database, model, settings) in each worker process: the model loads once.
_JOBS: dict[tuple[str, str, str], VideoIngest] = {}


def _limit_threads() -> None:
    """Apply the worker's share of the cores to TensorFlow before it starts its thread pools."""
    threads = os.environ.get("MXN_WORKER_THREADS")
    if not threads:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran something in this process
        log.debug("TensorFlow was initialised already; keeping its thread pools")


def _ingest_job(task: RangeTask) -> VideoIngest:
    key = (task.url, task.model_path, repr(task.config))
    if key not in _JOBS:
        _limit_threads()
        _JOBS[key] = VideoIngest(Store(task.url), load_model(task.model_path), task.config, progress=False)
    return _JOBS[key]


def prepare_worker(task: RangeTask) -> str:
    """Load the model on this worker and trace its graphs, so the first range pays no start-up.

    Run on every worker by :class:`DistributedIngest` before any range is
    submitted (``Client.run``); a model a worker cannot load fails here, early.
    """
    job = _ingest_job(task)
    c, size = job.config, job.model.spec.input_size
    blank = np.zeros((c.batch_size + 1, size, size, 3), np.uint8)  # a full batch and a remainder
    job.runner.all_exits(blank, exits=c.exits, features_exit=c.cluster_exit)
    return f"{socket.gethostname()}:{os.getpid()}"


def run_range(task: RangeTask) -> dict[str, Any]:
    """Ingest one range on a worker; its statistics. Raises :class:`VideoError` for a damaged video."""
    job = _ingest_job(task)
    run = job.store.get_run(task.run_id)
    return job.ingest_range(task.path, task.info, run, task.index)


@dataclass
class _Video:
    """One video of a distributed ingest, as the client follows it."""

    path: str
    info: VideoInfo
    run: RunRecord
    resumed_from: int
    futures: list[Any]
    began: float
    error: str | None = None


class DistributedIngest:
    """Ingest many videos on a Dask cluster into one store (see the module docstring).

    Args:
        url: the database every worker writes to.
        model_path: the model file (workers load it themselves).
        config: ingest settings; the same ones give the same index as one process.
        client: a ``distributed.Client`` (see :func:`dask_client`).
        progress: a progress bar over all videos' frames.
        retries: how often a range whose task raised is tried again (a worker
            that dies is replaced by Dask whatever this says).
    """

    def __init__(
        self,
        url: str,
        model_path: str | os.PathLike,
        config: IngestConfig,
        client: Any,
        progress: bool = True,
        retries: int = 1,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.url, self.model_path = url, str(Path(model_path).resolve())
        self.client, self.progress, self.retries = client, progress, retries
        self.store = Store(url)
        self.local = VideoIngest(self.store, load_model(self.model_path), config, progress=False)
        self.config = self.local.config
        warm = RangeTask(self.url, self.model_path, self.config, "", _NO_VIDEO, 0, 0)
        self.workers = sorted(client.run(prepare_worker, warm).values())

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> DistributedIngest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingest(self, paths: Sequence[str | os.PathLike], force: bool = False) -> list[IngestResult]:
        """Ingest every video; a bad one is reported as failed and the others still run."""
        results: dict[int, IngestResult] = {}
        videos: dict[int, _Video] = {}
        for i, path in enumerate(paths):
            try:
                outcome = self._submit(str(path), force)
            except VideoError as err:
                results[i] = IngestResult(Path(path).name, "failed", error=str(err))
                continue
            if isinstance(outcome, IngestResult):
                results[i] = outcome
            else:
                videos[i] = outcome
        self._follow(videos, results)
        return [results[i] for i in range(len(paths))]

    def _submit(self, path: str, force: bool) -> IngestResult | _Video:
        info = probe(path)
        run, action = self.local.prepare(info, force)
        if action == "skipped":
            return IngestResult(
                info.name, "skipped", run.id, stats=run.stats, settings_differ=self.local.differences(run)
            )
        pending = [r for r in self.store.ranges(run.id) if r.status != "done"]
        resumed_from = pending[0].next_frame if action == "resume" and pending else 0
        futures = [
            self.client.submit(
                run_range,
                RangeTask(self.url, self.model_path, self.config, path, info, run.id, r.index),
                key=f"mxn-range-{run.id}-{r.index}-{time.time_ns()}",
                retries=self.retries,
                pure=False,
            )
            for r in pending
        ]
        return _Video(path, info, run, resumed_from, futures, time.perf_counter())

    def _follow(self, videos: dict[int, _Video], results: dict[int, IngestResult]) -> None:
        """Wait for the ranges, finishing each video when its last range is done."""
        distributed = _require_dask()
        total = sum(-(-(v.info.frame_count or 0) // self.config.stride) for v in videos.values())
        bar = tqdm(total=total or None, desc="ingest (distributed)", unit="frame", disable=not self.progress)
        try:
            while videos:
                waiting = [f for v in videos.values() for f in v.futures if not f.done()]
                if waiting:
                    with suppress(TimeoutError):
                        distributed.wait(waiting, timeout=POLL_S, return_when="FIRST_COMPLETED")
                self._update_bar(bar, videos.values())
                for i, video in list(videos.items()):
                    if all(f.done() for f in video.futures):
                        results[i] = self._end(video)
                        del videos[i]
        finally:
            bar.close()

    def _update_bar(self, bar: tqdm, videos: Any) -> None:
        if bar.disable:
            return
        done = 0
        for video in videos:
            for r in self.store.ranges(video.run.id):
                done += -(-(r.next_frame - r.start_frame) // self.config.stride)
        bar.update(max(0, done - bar.n))

    def _end(self, video: _Video) -> IngestResult:
        """Finish a video whose range tasks have all ended, or fail its run with the first error."""
        errors = [f.exception() for f in video.futures if f.status != "finished"]
        if errors:
            message = str(errors[0]) or type(errors[0]).__name__
            if isinstance(errors[0], VideoError):  # a damaged file: nothing of it is kept, as in one process
                self.store.discard_run(video.run.id, forget_video=True)
                return IngestResult(video.info.name, "failed", error=message)
            message = f"{type(errors[0]).__name__}: {message}"
            self.store.fail_run(video.run.id, message)
            return IngestResult(video.info.name, "failed", video.run.id, error=message)
        wall = time.perf_counter() - video.began
        return self.local.finish(video.run, video.info.name, video.resumed_from, extra={"wall_s": wall})


def ingest_videos_distributed(
    paths: Sequence[str | os.PathLike],
    url: str,
    model_path: str | os.PathLike,
    config: IngestConfig,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[IngestResult]:
    """Ingest ``paths`` on a local cluster of ``workers`` or on the Dask ``scheduler`` given."""
    with (
        dask_client(workers, scheduler) as client,
        DistributedIngest(url, model_path, config, client, progress=progress) as job,
    ):
        return job.ingest(paths, force=force)
