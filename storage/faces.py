"""Face labelling's store (Algorithm 3): face movies, a run per video, labelled faces, exit databases.

A face movie is a labelling project that can be reopened and extended: its
per-exit face databases are stored with it (replaced whole at every commit)
and its runs resume where they were killed, so a chunk's rows, progress and
databases are written in one transaction. Face runs share the videos table
with ingest (see :mod:`mxn.storage.runs`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, delete, func, insert, select, update

from .database import Database, StoreError
from .records import FaceFeatures, FaceMovieRecord, FaceRow, FaceRowRecord, FaceRunRecord, from_row
from .runs import forget_unused_video
from .sql import (
    FACE_FEATURES,
    FACE_MOVIES,
    FACE_ROWS,
    FACE_RUNS,
    VIDEOS,
    box,
    bulk_insert,
    mark_failed,
    now,
    to_bytes,
    to_vector,
)

log = logging.getLogger(__name__)


class FaceLabels(Database):
    """Face movies and their labelling runs, labelled faces and per-exit face databases."""

    def face_movie(
        self, name: str, model_sha: str, config: dict[str, Any] | None = None, create: bool = True
    ) -> FaceMovieRecord:
        """The face movie ``name``, created when new (and ``create``); it must use face model ``model_sha``.

        An existing movie keeps its stored config. A movie labelled with another
        face model is refused: its features mean nothing to this one.
        """
        with self._begin(f"opening face movie {name!r}") as conn:
            row = conn.execute(select(FACE_MOVIES).where(FACE_MOVIES.c.name == name)).first()
        if row is None:
            if not create:
                raise StoreError(f"no face movie named {name!r} in {self.url}")
            created = now()
            values = {"name": name, "model_sha": model_sha, "config": config or {}, "stats": {},
                      "created_at": created, "updated_at": created}  # fmt: skip
            self._insert_once(FACE_MOVIES, values, f"creating face movie {name!r}")
            with self._begin(f"opening face movie {name!r}") as conn:
                row = conn.execute(select(FACE_MOVIES).where(FACE_MOVIES.c.name == name)).one()
        movie = from_row(FaceMovieRecord, row)
        if movie.model_sha != model_sha:
            raise StoreError(
                f"face movie {name!r} was labelled with another face model (sha {movie.model_sha[:12]}, "
                f"this one is {model_sha[:12]}): use that model to extend it, or choose another --movie name"
            )
        return movie

    def face_movies(self) -> list[FaceMovieRecord]:
        """Every face movie, oldest first."""
        with self._begin("listing face movies") as conn:
            rows = conn.execute(select(FACE_MOVIES).order_by(FACE_MOVIES.c.id))
            return [from_row(FaceMovieRecord, r) for r in rows]

    def face_runs(self, movie_id: int, video_id: int | None = None) -> list[FaceRunRecord]:
        """A movie's labelling runs of every status, oldest first."""
        stmt = select(FACE_RUNS).where(FACE_RUNS.c.movie_id == movie_id).order_by(FACE_RUNS.c.id)
        if video_id is not None:
            stmt = stmt.where(FACE_RUNS.c.video_id == video_id)
        with self._begin(f"listing the runs of face movie {movie_id}") as conn:
            return [from_row(FaceRunRecord, r) for r in conn.execute(stmt)]

    def get_face_run(self, run_id: int) -> FaceRunRecord:
        with self._begin(f"reading face run {run_id}") as conn:
            return self._face_run(conn, run_id)

    def _face_run(self, conn: Connection, run_id: int, running: str | None = None) -> FaceRunRecord:
        """Face run ``run_id``; when ``running`` names an action, the run must still be running for it."""
        row = conn.execute(select(FACE_RUNS).where(FACE_RUNS.c.id == run_id)).first()
        if row is None:
            raise StoreError(f"no face run {run_id} in {self.url}")
        run = from_row(FaceRunRecord, row)
        if running is not None and run.status != "running":
            raise StoreError(f"cannot {running} face run {run_id}: it is {run.status}, not running")
        return run

    def start_face_run(self, movie_id: int, video_id: int, *, force: bool = False) -> FaceRunRecord:
        """The run that labels ``video_id`` for ``movie_id``: an unfinished one resumed, else a new one.

        A running or failed run of the pair (a killed or failed labelling) is
        resumed: it comes back ``running`` with its ``next_frame``. A video the
        movie already labelled is refused unless ``force``; then a new run
        starts and the old labelling stays until the new run finishes.
        """
        with self._begin(f"starting face run of video {video_id}") as conn:
            movie = conn.execute(select(FACE_MOVIES).where(FACE_MOVIES.c.id == movie_id)).first()
            if movie is None:
                raise StoreError(f"no face movie {movie_id} in {self.url}")
            if conn.execute(select(VIDEOS.c.id).where(VIDEOS.c.id == video_id)).first() is None:
                raise StoreError(f"no video {video_id} in {self.url}")
            runs = conn.execute(
                select(FACE_RUNS)
                .where(FACE_RUNS.c.movie_id == movie_id, FACE_RUNS.c.video_id == video_id)
                .order_by(FACE_RUNS.c.id.desc())
            ).all()
            unfinished = [r for r in runs if r.status in ("running", "failed")]
            if unfinished:
                run_id = unfinished[0].id
                conn.execute(
                    update(FACE_RUNS)
                    .where(FACE_RUNS.c.id == run_id)
                    .values(status="running", error=None, finished_at=None)
                )
                log.info("resuming face run %d at frame %d", run_id, unfinished[0].next_frame)
                return self._face_run(conn, run_id)
            done = [r for r in runs if r.status == "done"]
            if done and not force:
                raise StoreError(
                    f"video {video_id} is already labelled in face movie {movie.name!r} (run {done[0].id}): "
                    "use --force to label it again (the old labels stay until the new run finishes)"
                )
            values = {"movie_id": movie_id, "video_id": video_id, "status": "running", "next_frame": 0,
                      "stats": {}, "started_at": now()}  # fmt: skip
            run_id = conn.execute(insert(FACE_RUNS).values(values)).inserted_primary_key[0]
            return self._face_run(conn, run_id)

    def commit_faces(
        self,
        run_id: int,
        rows: Sequence[FaceRow],
        next_frame: int,
        features: FaceFeatures,
        stats: dict[str, Any] | None = None,
    ) -> None:
        """Store one chunk of labelling in one transaction: its rows, the progress, the face databases.

        Rows get the run's next ``seq`` numbers. ``features`` maps an exit to
        the complete current state of its database (labels, vectors (n, d),
        counts), which replaces the movie's stored one. Rows of frames below the
        run's committed ``next_frame`` are already stored and skipped, so a
        retried commit duplicates nothing; on any error nothing is written.
        """
        with self._begin(f"committing faces of face run {run_id}") as conn:
            run = self._face_run(conn, run_id, running="commit faces to")
            fresh = [r for r in rows if int(r.frame) >= run.next_frame]
            if len(fresh) < len(rows):
                log.info("face run %d: skipped %d already committed rows", run_id, len(rows) - len(fresh))
            top = conn.scalar(select(func.max(FACE_ROWS.c.seq)).where(FACE_ROWS.c.run_id == run_id))
            start = 0 if top is None else int(top) + 1
            values = [
                {"run_id": run_id, "seq": start + k, "frame": int(r.frame), "time": float(r.time),
                 "x1": int(r.box[0]), "y1": int(r.box[1]), "x2": int(r.box[2]), "y2": int(r.box[3]),
                 "name": str(r.name), "exit": None if r.exit is None else int(r.exit),
                 "distance": None if r.distance is None else float(r.distance),
                 "oracle_name": None if r.oracle_name is None else str(r.oracle_name)}
                for k, r in enumerate(fresh)
            ]  # fmt: skip
            bulk_insert(conn, FACE_ROWS, values)
            feature_rows = [
                row
                for exit_, arrays in sorted(features.items())
                for row in _feature_rows(run.movie_id, exit_, arrays)
            ]
            if features:
                conn.execute(
                    delete(FACE_FEATURES).where(
                        FACE_FEATURES.c.movie_id == run.movie_id,
                        FACE_FEATURES.c.exit.in_([int(e) for e in features]),
                    )
                )
                bulk_insert(conn, FACE_FEATURES, feature_rows)
            progress: dict[str, Any] = {"next_frame": max(int(next_frame), run.next_frame)}
            if stats is not None:
                progress["stats"] = stats
            conn.execute(update(FACE_RUNS).where(FACE_RUNS.c.id == run_id).values(progress))
            conn.execute(update(FACE_MOVIES).where(FACE_MOVIES.c.id == run.movie_id).values(updated_at=now()))

    def finish_face_run(
        self, run_id: int, stats: dict[str, Any], movie_stats: dict[str, Any] | None = None
    ) -> FaceRunRecord:
        """Mark the run done and, in the same transaction, delete the labelling of the video it replaces.

        ``movie_stats``, when given, becomes the movie's stats.
        """
        with self._begin(f"finishing face run {run_id}") as conn:
            run = self._face_run(conn, run_id, running="finish")
            finished = now()
            conn.execute(
                update(FACE_RUNS)
                .where(FACE_RUNS.c.id == run_id)
                .values(status="done", stats=stats, error=None, finished_at=finished)
            )
            replaced = conn.scalars(
                select(FACE_RUNS.c.id).where(
                    FACE_RUNS.c.movie_id == run.movie_id,
                    FACE_RUNS.c.video_id == run.video_id,
                    FACE_RUNS.c.id != run_id,
                )
            ).all()
            if replaced:
                conn.execute(delete(FACE_ROWS).where(FACE_ROWS.c.run_id.in_(replaced)))
                conn.execute(delete(FACE_RUNS).where(FACE_RUNS.c.id.in_(replaced)))
            movie_values: dict[str, Any] = {"updated_at": finished}
            if movie_stats is not None:
                movie_values["stats"] = movie_stats
            conn.execute(update(FACE_MOVIES).where(FACE_MOVIES.c.id == run.movie_id).values(movie_values))
            return self._face_run(conn, run_id)

    def fail_face_run(self, run_id: int, error: str) -> None:
        """Mark the run failed, keeping its error; its committed rows stay and a later start resumes it."""
        with self._begin(f"failing face run {run_id}") as conn:
            self._face_run(conn, run_id, running="fail")
            mark_failed(conn, FACE_RUNS, run_id, error)

    def discard_face_run(self, run_id: int) -> bool:
        """Delete a run and its rows; then its movie too, with its face databases, if it has no run left.

        For a video that cannot be labelled (corrupt, truncated): it leaves
        nothing behind, and a movie that only it was in disappears, as does
        its video when no other run uses it, in one transaction. Returns
        whether the movie was deleted.
        """
        with self._begin(f"discarding face run {run_id}") as conn:
            run = self._face_run(conn, run_id)
            movie_id = run.movie_id
            conn.execute(delete(FACE_ROWS).where(FACE_ROWS.c.run_id == run_id))
            conn.execute(delete(FACE_RUNS).where(FACE_RUNS.c.id == run_id))
            forget_unused_video(conn, run.video_id)
            left = conn.scalar(select(func.count(FACE_RUNS.c.id)).where(FACE_RUNS.c.movie_id == movie_id))
            if left:
                return False
            conn.execute(delete(FACE_FEATURES).where(FACE_FEATURES.c.movie_id == movie_id))
            conn.execute(delete(FACE_MOVIES).where(FACE_MOVIES.c.id == movie_id))
            return True

    def load_face_features(self, movie_id: int) -> FaceFeatures:
        """The movie's face databases as last committed: exit -> (labels in order seen, vectors, counts)."""
        stmt = (
            select(FACE_FEATURES.c.exit, FACE_FEATURES.c.label, FACE_FEATURES.c.vector, FACE_FEATURES.c.count)
            .where(FACE_FEATURES.c.movie_id == movie_id)
            .order_by(FACE_FEATURES.c.exit, FACE_FEATURES.c.ordinal)
        )
        with self._begin(f"loading the face features of face movie {movie_id}") as conn:
            rows = conn.execute(stmt).all()
        out: FaceFeatures = {}
        for exit_, group in itertools.groupby(rows, key=lambda r: r.exit):
            group = list(group)
            vectors = [to_vector(r.vector) for r in group]
            if len({v.shape for v in vectors}) != 1:
                raise StoreError(f"face movie {movie_id}: the stored features of exit {exit_} differ in size")
            out[int(exit_)] = (
                [r.label for r in group],
                np.stack(vectors).astype(np.float32, copy=False),
                np.array([r.count for r in group], np.int64),
            )
        return out

    def face_rows(
        self, movie_id: int, video_id: int | None = None, *, include_running: bool = False
    ) -> list[FaceRowRecord]:
        """The movie's labelled faces of done runs (and running ones when asked), by video, frame, seq."""
        statuses = ("done", "running") if include_running else ("done",)
        stmt = (
            select(FACE_ROWS, FACE_RUNS.c.video_id)
            .join(FACE_RUNS, FACE_RUNS.c.id == FACE_ROWS.c.run_id)
            .where(FACE_RUNS.c.movie_id == movie_id, FACE_RUNS.c.status.in_(statuses))
            .order_by(FACE_RUNS.c.video_id, FACE_ROWS.c.frame, FACE_RUNS.c.id, FACE_ROWS.c.seq)
        )
        if video_id is not None:
            stmt = stmt.where(FACE_RUNS.c.video_id == video_id)
        with self._begin(f"listing the faces of face movie {movie_id}") as conn:
            return [from_row(FaceRowRecord, r, box=box(r)) for r in conn.execute(stmt)]


def _feature_rows(movie_id: int, exit_: int, arrays: tuple[Any, Any, Any]) -> list[dict[str, Any]]:
    """The face_features rows of one exit's complete database; inconsistent arrays are a StoreError."""
    labels, vectors, counts = arrays
    labels = [str(label) for label in labels]
    vectors = np.asarray(vectors, np.float32)
    counts = np.asarray(counts).reshape(-1)
    if len(labels) == 0 and vectors.size == 0 and counts.size == 0:
        return []
    if vectors.ndim != 2 or len(vectors) != len(labels) or len(counts) != len(labels):
        raise StoreError(
            f"face features of exit {exit_}: {len(labels)} labels, vectors of shape {vectors.shape} "
            f"and {len(counts)} counts do not describe the same rows"
        )
    if len(set(labels)) != len(labels):
        raise StoreError(f"face features of exit {exit_}: labels are not unique")
    return [
        {"movie_id": movie_id, "exit": int(exit_), "label": label, "ordinal": k,
         "vector": to_bytes(vectors[k]), "count": int(counts[k])}
        for k, label in enumerate(labels)
    ]  # fmt: skip
