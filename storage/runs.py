"""Videos and the life of an ingest run: start, ranges claimed by workers, chunk commits, finish or discard.

A run is the unit the index changes by. Ingest writes it chunk by chunk
(one transaction per chunk, so a killed ingest resumes from its last
commit), split into ranges of frames that workers claim; only the attempt
that holds a range may commit to it. Queries see a run only once it is
``done``, and finishing one replaces the video's older index in the same
transaction. What a chunk holds (objects, clusters, merges) is written by
:mod:`mxn.storage.label_index`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from .database import Database, RangeTakenError, StoreError
from .label_index import apply_merges, insert_objects, upsert_clusters
from .records import (
    ClusterMerge,
    ClusterState,
    ObjectRecord,
    RangeRecord,
    RunRecord,
    VideoInfo,
    VideoRecord,
    from_row,
)
from .sql import (
    CLUSTERS,
    FACE_RUNS,
    LABELS,
    MEMBERS,
    OBJECTS,
    RANGES,
    RUNS,
    VERDICTS,
    VIDEOS,
    mark_failed,
    now,
)


class VideoRuns(Database):
    """The videos of a store and their ingest runs, with the ranges and chunks a run is written in."""

    # -- videos
    def add_video(self, info: VideoInfo) -> VideoRecord:
        """Register a video; a known content hash returns the existing record (same bytes, same video)."""
        existing = self.find_video(info.content_hash)
        if existing is not None:
            return existing
        values = {
            "name": info.name,
            "path": info.path,
            "content_hash": info.content_hash,
            "fps": float(info.fps),
            "width": int(info.width),
            "height": int(info.height),
            "frame_count": int(info.frame_count),
            "duration_s": float(info.duration_s),
            "added_at": now(),
        }
        self._insert_once(VIDEOS, values, f"adding video {info.name}")
        video = self.find_video(info.content_hash)
        assert video is not None
        return video

    def find_video(self, content_hash: str) -> VideoRecord | None:
        with self._begin("finding a video") as conn:
            row = conn.execute(select(VIDEOS).where(VIDEOS.c.content_hash == content_hash)).first()
        return None if row is None else from_row(VideoRecord, row)

    def videos(self) -> list[VideoRecord]:
        with self._begin("listing videos") as conn:
            return [from_row(VideoRecord, r) for r in conn.execute(select(VIDEOS).order_by(VIDEOS.c.id))]

    # -- runs
    def start_run(
        self,
        video_id: int,
        mode: str,
        config: dict[str, Any],
        model_sha: str,
        ranges: Sequence[tuple[int, int | None]] = ((0, None),),
    ) -> RunRecord:
        """A new ``running`` run starting at frame 0, split into ``ranges`` (``(start, end)``, pending).

        The default is one range over the whole video.
        """
        if not ranges:
            raise ValueError("a run needs at least one range")
        values = {
            "video_id": video_id,
            "mode": mode,
            "config": config,
            "model_sha": model_sha,
            "status": "running",
            "next_frame": 0,
            "stats": {},
            "started_at": now(),
        }
        with self._begin(f"starting a run of video {video_id}") as conn:
            run_id = conn.execute(insert(RUNS).values(values)).inserted_primary_key[0]
            rows = [
                {
                    "run_id": run_id,
                    "index": i,
                    "start_frame": int(start),
                    "end_frame": None if end is None else int(end),
                    "status": "pending",
                    "next_frame": int(start),
                    "stats": {},
                    "attempts": 0,
                }
                for i, (start, end) in enumerate(ranges)
            ]
            conn.execute(insert(RANGES), rows)
            return self._run(conn, run_id)

    def get_run(self, run_id: int) -> RunRecord:
        with self._begin(f"reading run {run_id}") as conn:
            return self._run(conn, run_id)

    def runs(self, video_id: int | None = None, status: str | None = None) -> list[RunRecord]:
        """Runs of every status (or one), oldest first."""
        stmt = select(RUNS).order_by(RUNS.c.id)
        if video_id is not None:
            stmt = stmt.where(RUNS.c.video_id == video_id)
        if status is not None:
            stmt = stmt.where(RUNS.c.status == status)
        with self._begin("listing runs") as conn:
            return [from_row(RunRecord, r) for r in conn.execute(stmt)]

    def _run(self, conn: Connection, run_id: int, running: str | None = None) -> RunRecord:
        """Run ``run_id``; when ``running`` names an action, the run must still be running for it."""
        row = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).first()
        if row is None:  # for a writer: another process discarded the run it was working on
            error = RangeTakenError if running else StoreError
            raise error(f"no run {run_id} in {self.url}")
        run = from_row(RunRecord, row)
        if running is not None and run.status != "running":
            raise StoreError(f"cannot {running} run {run_id}: it is {run.status}, not running")
        return run

    # -- ranges of a run
    def ranges(self, run_id: int) -> list[RangeRecord]:
        """The ranges of a run, by index."""
        stmt = select(RANGES).where(RANGES.c.run_id == run_id).order_by(RANGES.c.index)
        with self._begin(f"listing the ranges of run {run_id}") as conn:
            return [from_row(RangeRecord, r) for r in conn.execute(stmt)]

    def claim_range(self, run_id: int, index: int, owner: str) -> RangeRecord:
        """Make ``owner`` (one attempt of one process) the holder of a range that is not done yet.

        A later claim takes the range over (a retry after a worker died);
        from then on only the new owner's chunks commit.
        """
        with self._begin(f"claiming range {index} of run {run_id}") as conn:
            self._run(conn, run_id, running="claim a range of")
            done = conn.execute(
                update(RANGES)
                .where(RANGES.c.run_id == run_id, RANGES.c.index == index, RANGES.c.status != "done")
                .values(status="running", owner=owner, attempts=RANGES.c.attempts + 1)
            )
            if done.rowcount != 1:
                raise StoreError(f"range {index} of run {run_id} does not exist or is already done")
            row = conn.execute(select(RANGES).where(RANGES.c.run_id == run_id, RANGES.c.index == index)).one()
            return from_row(RangeRecord, row)

    def _update_range(
        self, conn: Connection, run_id: int, index: int, owner: str | None, what: str, **values: Any
    ) -> None:
        """Update a range that ``owner`` still holds (any holder when ``owner`` is None), or raise."""
        conditions = [RANGES.c.run_id == run_id, RANGES.c.index == index, RANGES.c.status != "done"]
        if owner is not None:
            conditions.append(RANGES.c.owner == owner)
        if conn.execute(update(RANGES).where(*conditions).values(**values)).rowcount != 1:
            row = conn.execute(
                select(RANGES.c.status, RANGES.c.owner).where(
                    RANGES.c.run_id == run_id, RANGES.c.index == index
                )
            ).first()
            if row is not None and row.status != "done" and row.owner != owner:
                raise RangeTakenError(
                    f"cannot {what} range {index} of run {run_id}: another attempt holds it now ({row.owner})"
                )
            raise StoreError(f"cannot {what} range {index} of run {run_id}: it is done or missing")

    def finish_range(self, run_id: int, index: int, stats: dict[str, Any], owner: str | None = None) -> None:
        """Mark a range done with its final statistics."""
        with self._begin(f"finishing range {index} of run {run_id}") as conn:
            self._run(conn, run_id, running="finish a range of")
            self._update_range(conn, run_id, index, owner, "finish", status="done", stats=stats, error=None)

    # -- writing a run
    def commit_chunk(
        self,
        run_id: int,
        next_frame: int,
        objects: list[ObjectRecord],
        clusters: list[ClusterState],
        stats: dict[str, Any],
        *,
        range_index: int = 0,
        owner: str | None = None,
    ) -> None:
        """Store one chunk of a range atomically: objects, changed clusters, new members, the progress.

        ``clusters`` are upserted by (run, seq); their ``new_members`` (object seqs
        of this or earlier chunks) are appended and, once the transaction has
        committed, cleared. ``next_frame`` and ``stats`` become the range's
        resume point and statistics. With ``owner``, the chunk commits only
        while that attempt holds the range. On any error nothing of the chunk
        is written and the lists stay as they were, so the caller may retry.
        """
        with self._begin(f"committing a chunk of run {run_id}") as conn:
            run = self._run(conn, run_id, running="commit a chunk to")
            self._update_range(
                conn, run_id, range_index, owner, "commit a chunk to", next_frame=int(next_frame), stats=stats
            )
            seq_ids = insert_objects(conn, run_id, objects)
            upsert_clusters(conn, run, clusters, seq_ids)
        for cluster in clusters:
            cluster.new_members.clear()

    def finish_run(
        self, run_id: int, stats: dict[str, Any], merges: Sequence[ClusterMerge] = ()
    ) -> RunRecord:
        """Mark the run done and, in the same transaction, merge clusters and delete the index it replaces.

        Every range must be done. ``merges`` fold clusters of later ranges into
        clusters of earlier ones (see :func:`mxn.ingest.merging.plan_merges`). The
        replaced runs are the other done or failed runs of the same video and
        mode: a forced re-ingest keeps the old index until the new one is complete.
        """
        with self._begin(f"finishing run {run_id}") as conn:
            run = self._run(conn, run_id, running="finish")
            open_ranges = conn.scalars(
                select(RANGES.c.index).where(RANGES.c.run_id == run_id, RANGES.c.status != "done")
            ).all()
            if open_ranges:
                raise StoreError(f"cannot finish run {run_id}: ranges {list(open_ranges)} are not done")
            apply_merges(conn, run, merges)
            conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(status="done", stats=stats, error=None, finished_at=now())
            )
            if conn.dialect.name == "postgresql":
                # the runs table changes too little for autovacuum to analyse it; without statistics
                # the planner loops over every run for each label lookup (10x slower at 10^6 objects)
                conn.exec_driver_sql("ANALYZE ingest_runs")
            replaced = conn.scalars(
                select(RUNS.c.id).where(
                    RUNS.c.video_id == run.video_id,
                    RUNS.c.mode == run.mode,
                    RUNS.c.status.in_(("done", "failed")),
                    RUNS.c.id != run_id,
                )
            ).all()
            delete_runs(conn, list(replaced))
            return self._run(conn, run_id)

    def fail_run(self, run_id: int, error: str) -> None:
        """Mark the run failed, keeping its error for the user (its rows stay, invisible to queries)."""
        with self._begin(f"failing run {run_id}") as conn:
            self._run(conn, run_id, running="fail")
            mark_failed(conn, RUNS, run_id, error)

    def discard_run(self, run_id: int, *, forget_video: bool = False) -> None:
        """Delete the run and all its rows in one transaction.

        With ``forget_video`` (a file that failed to ingest: it leaves no
        trace) its video goes too, in the same transaction, unless another
        run or face run still uses it.
        """
        with self._begin(f"discarding run {run_id}") as conn:
            run = self._run(conn, run_id)
            delete_runs(conn, [run_id])
            if forget_video:
                forget_unused_video(conn, run.video_id)


def delete_runs(conn: Connection, run_ids: list[int]) -> None:
    """Delete runs with every row that hangs off them, children first (foreign keys stay valid)."""
    if not run_ids:
        return
    clusters_of = select(CLUSTERS.c.id).where(CLUSTERS.c.run_id.in_(run_ids))
    objects_of = select(OBJECTS.c.id).where(OBJECTS.c.run_id.in_(run_ids))
    conn.execute(delete(VERDICTS).where(VERDICTS.c.cluster_id.in_(clusters_of)))
    conn.execute(delete(MEMBERS).where(MEMBERS.c.cluster_id.in_(clusters_of)))
    conn.execute(delete(LABELS).where(LABELS.c.object_id.in_(objects_of)))
    conn.execute(delete(CLUSTERS).where(CLUSTERS.c.run_id.in_(run_ids)))
    conn.execute(delete(OBJECTS).where(OBJECTS.c.run_id.in_(run_ids)))
    conn.execute(delete(RANGES).where(RANGES.c.run_id.in_(run_ids)))
    conn.execute(delete(RUNS).where(RUNS.c.id.in_(run_ids)))


def forget_unused_video(conn: Connection, video_id: int) -> None:
    """Delete a video no ingest run and no face run refers to (a file that failed leaves no trace)."""
    for runs in (RUNS, FACE_RUNS):
        if conn.scalar(select(func.count(runs.c.id)).where(runs.c.video_id == video_id)):
            return
    conn.execute(delete(VIDEOS).where(VIDEOS.c.id == video_id))
