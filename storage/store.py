"""The store: one small API over the SQL schema, the same for SQLite and PostgreSQL.

Ingest writes through it chunk by chunk (one transaction per chunk, so a
killed ingest resumes from its last commit); queries read through it and
only ever see finished (``done``) runs. Every database error leaves it as a
:class:`StoreError`, so callers never import SQLAlchemy.

Bulk paths use Core ``executemany`` inserts and resolve the run-local keys
(``seq``) to ids with one indexed range query, because a chunk may hold
tens of thousands of objects.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from . import vectors as vec
from .records import (
    ClusterMerge,
    ClusterRecord,
    ClusterState,
    FaceFeatures,
    FaceMovieRecord,
    FaceRow,
    FaceRowRecord,
    FaceRunRecord,
    ObjectRecord,
    RangeRecord,
    RunRecord,
    StoredObject,
    Verdict,
    VideoInfo,
    VideoRecord,
    range_seq_base,
)
from .schema import (
    SCHEMA_VERSION,
    UPGRADABLE_FROM,
    WIDENED_COLUMNS,
    Base,
    Cluster,
    ClusterMember,
    DetectedObject,
    FaceFeature,
    FaceMovie,
    FaceRun,
    IngestRange,
    IngestRun,
    LabelledFace,
    ObjectLabel,
    QueryVerdict,
    SchemaInfo,
    Video,
)

log = logging.getLogger(__name__)

#: Used when the user gives no ``--db``.
DEFAULT_URL = "sqlite:///mxn.db"

#: Rows per ``IN (...)`` list: far below SQLite's and PostgreSQL's parameter limits.
_BATCH = 1000

VIDEOS = Video.__table__
RUNS = IngestRun.__table__
RANGES = IngestRange.__table__
OBJECTS = DetectedObject.__table__
LABELS = ObjectLabel.__table__
CLUSTERS = Cluster.__table__
MEMBERS = ClusterMember.__table__
SCHEMA = SchemaInfo.__table__
VERDICTS = QueryVerdict.__table__
FACE_MOVIES = FaceMovie.__table__
FACE_RUNS = FaceRun.__table__
FACE_ROWS = LabelledFace.__table__
FACE_FEATURES = FaceFeature.__table__

#: The cluster columns a merge of ranges changes (the representative stays).
_MERGED_COLUMNS = ("centroid", "size", "active", "first_time", "last_time")

#: The cluster columns ingest may change after insertion (label, run and seq never change).
_CLUSTER_MUTABLE = (
    "centroid",
    "size",
    "representative_object_id",
    "representative_crop",
    "representative_distance",
    "active",
    "first_time",
    "last_time",
)


class StoreError(Exception):
    """A database that cannot be opened or used: bad URL, wrong schema version, unreachable server."""


class RangeTakenError(StoreError):
    """A write for a range that another attempt has taken over (or whose run was discarded meanwhile)."""


#: A database URL starts with a scheme (``sqlite://``, ``postgresql+psycopg://``); anything else is a path.
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def default_url() -> str:
    """``$MXN_DB`` when set (one setting points every command at a shared server), else DEFAULT_URL."""
    return database_url(os.environ.get("MXN_DB") or DEFAULT_URL)


def database_url(db: str | os.PathLike | None = None) -> str:
    """The URL of ``db``: a URL as it is, a file path as an SQLite URL; ``None``: :func:`default_url`.

    The one place that reads what a user wrote after ``--db`` (or in ``$MXN_DB``),
    so ``cams.db``, ``Path("cams.db")`` and ``sqlite:///cams.db`` name the same
    database everywhere. A path is quoted into its URL, so ``?`` and ``%`` stay
    part of the file name (in a URL, ``?`` starts the query string) and the URL
    reads back to the same path wherever it is passed on (Dask workers).
    """
    if db is None:
        return default_url()
    text = os.fspath(db)
    if not text.strip():
        raise StoreError("the database is an empty name: give a file (cams.db) or a URL (sqlite:///cams.db)")
    if not isinstance(db, os.PathLike) and _URL_SCHEME.match(text):
        return text
    return URL.create("sqlite", database=text).render_as_string(hide_password=False)


# -- helpers ---------------------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, fit for messages and logs.

    A URL without a password is shown as the user wrote it (rendering it again
    would quote a ``file:`` URI's colon).
    """
    try:
        parsed = make_url(url)
        return url if parsed.password is None else parsed.render_as_string(hide_password=True)
    except Exception:  # not even a URL: mask anything that looks like user:password@
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _cause(err: BaseException) -> str:
    """The driver's own message when there is one (SQLAlchemy's wrapper adds SQL and a link)."""
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _json_dumps(value: Any) -> str:
    """JSON for the config/stats columns, accepting the NumPy scalars ingest counters tend to be."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    return json.dumps(value, default=default)


def _to_bytes(vector: np.ndarray) -> bytes:
    """float32 little-endian bytes: the storage form of every vector."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def _to_vector(data: bytes) -> np.ndarray:
    """A writable native float32 array, bit-identical to what was stored."""
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def _batches(values: Iterable[Any], size: int = _BATCH) -> Iterator[list[Any]]:
    it = iter(values)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_url(url: str) -> URL:
    """The SQLAlchemy URL for ``url``, with PostgreSQL pinned to psycopg (the driver we ship)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError) as err:
        raise StoreError(f"cannot open database {mask_url(str(url))}: not a database URL ({err})") from err
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    raise StoreError(
        f"cannot open database {mask_url(url)}: unsupported driver {parsed.drivername!r} "
        "(use sqlite:///FILE or postgresql://USER@HOST:PORT/DB)"
    )


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys are off by default in SQLite; a busy timeout lets a reader wait for a writer."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def sqlite_path(url: str | os.PathLike) -> Path | None:
    """The file of an SQLite database URL or path (None: another backend, or an in-memory database)."""
    return _sqlite_file(_parse_url(database_url(url)))


def _sqlite_file(url: URL) -> Path | None:
    """The file an SQLite URL names (``file:`` URIs included), or None for an in-memory database."""
    if url.get_backend_name() != "sqlite" or _is_memory(url):
        return None
    name = str(url.database)
    if name.startswith("file:"):
        name = name[len("file:") :].split("?", 1)[0]
    return Path(name).expanduser()


def _make_engine(url: URL, create: bool) -> Engine:
    if url.get_backend_name() == "sqlite":
        path = _sqlite_file(url)
        if path is not None and create:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, json_serializer=_json_dumps)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": 10}
    return create_engine(url, json_serializer=_json_dumps, connect_args=connect_args, pool_pre_ping=True)


def _default_index_dir(url: URL) -> Path | None:
    """Where the FAISS caches of a database live when the caller does not say (None: memory only)."""
    if url.get_backend_name() == "sqlite":
        if _is_memory(url):
            return None
        db = Path(str(url.database)).expanduser().resolve()
        return db.with_name(db.name + ".faiss")
    name = f"{url.host or 'localhost'}_{url.port or 5432}_{url.database or ''}"
    return Path.cwd() / ".mxn-faiss" / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _schema_version(conn: Connection) -> int | None:
    """The stored schema version, or None for a database that has none yet."""
    if not inspect(conn).has_table(SCHEMA.name):
        return None
    return conn.scalar(select(SCHEMA.c.version).where(SCHEMA.c.id == 1))


#: The PostgreSQL advisory lock that serialises stores creating or upgrading one database's schema.
_SCHEMA_LOCK = 0x6D786E  # "mxn"


def _lock_schema(conn: Connection) -> None:
    """Hold the database's write lock for this transaction: one process at a time makes the schema.

    Two ingests starting on a new database at once would otherwise both find
    it empty and both create tables (PostgreSQL: "relation already exists"),
    or one would see the other's half-made schema (SQLite's driver commits
    each CREATE TABLE on its own unless a transaction was begun explicitly).
    The second now waits, then finds the first's complete schema.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # also makes the CREATE TABLEs one transaction
    elif conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK)))


#: What a database that is not mxn's is told to hold instead (a few of the tables, by name).
_EXPECTED = f"mxn's tables ({SCHEMA.name}, {VIDEOS.name}, {RUNS.name}, {OBJECTS.name}, ...)"


def _ensure_schema(conn: Connection, create: bool) -> None:
    """Create the tables of a new database, upgrade an older one that only lacks tables, refuse others.

    Only an empty database becomes an mxn store, and only when ``create``: a
    database of another program never gets mxn's tables added to it, and the
    read-only jobs (queries, tuning, reports) never make a store at all.
    """
    if create:
        _lock_schema(conn)
    found = _schema_version(conn)
    if found is None:
        others = sorted(inspect(conn).get_table_names())
        if others:
            listed = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            raise StoreError(
                f"not an mxn database: it holds {len(others)} table(s) of another program ({listed}), "
                f"not {_EXPECTED}; give mxn a database of its own"
            )
        if not create:
            raise StoreError(
                f"not an mxn database: it is empty (expected {_EXPECTED}); "
                "`mxn ingest VIDEO --db ...` or `mxn faces MOVIE --db ...` makes one"
            )
        Base.metadata.create_all(conn)
        conn.execute(insert(SCHEMA).values(id=1, version=SCHEMA_VERSION))
    elif found in UPGRADABLE_FROM:
        Base.metadata.create_all(conn)  # creates only the missing tables ...
        for table in Base.metadata.sorted_tables:  # ... so the indexes added since go on existing ones
            for index in table.indexes:
                index.create(conn, checkfirst=True)
        if conn.dialect.name == "postgresql":
            for table, column in WIDENED_COLUMNS:
                conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE BIGINT")
        conn.execute(update(SCHEMA).where(SCHEMA.c.id == 1).values(version=SCHEMA_VERSION))
        log.info("upgraded the database schema from version %d to %d", found, SCHEMA_VERSION)
    elif found != SCHEMA_VERSION:
        raise StoreError(
            f"schema version {found} found, but this mxn expects version {SCHEMA_VERSION} "
            "(use a new database or re-ingest)"
        )


# -- row -> record ---------------------------------------------------------------------------------------


def _video_record(row: Row) -> VideoRecord:
    return VideoRecord(
        name=row.name,
        path=row.path,
        content_hash=row.content_hash,
        fps=row.fps,
        width=row.width,
        height=row.height,
        frame_count=row.frame_count,
        duration_s=row.duration_s,
        id=row.id,
    )


def _run_record(row: Row) -> RunRecord:
    return RunRecord(
        id=row.id,
        video_id=row.video_id,
        mode=row.mode,
        config=row.config,
        model_sha=row.model_sha,
        status=row.status,
        next_frame=row.next_frame,
        stats=row.stats,
        error=row.error,
    )


def _range_record(row: Row) -> RangeRecord:
    return RangeRecord(
        run_id=row.run_id,
        index=row.index,
        start_frame=row.start_frame,
        end_frame=row.end_frame,
        status=row.status,
        next_frame=row.next_frame,
        stats=row.stats,
        owner=row.owner,
        attempts=row.attempts,
        error=row.error,
    )


def _face_movie_record(row: Row) -> FaceMovieRecord:
    return FaceMovieRecord(
        id=row.id, name=row.name, model_sha=row.model_sha, config=row.config, stats=row.stats
    )


def _face_run_record(row: Row) -> FaceRunRecord:
    return FaceRunRecord(
        id=row.id,
        movie_id=row.movie_id,
        video_id=row.video_id,
        status=row.status,
        next_frame=row.next_frame,
        stats=row.stats,
        error=row.error,
    )


def _face_row_record(row: Row) -> FaceRowRecord:
    return FaceRowRecord(
        id=row.id,
        run_id=row.run_id,
        video_id=row.video_id,
        seq=row.seq,
        frame=row.frame,
        time=row.time,
        box=(row.x1, row.y1, row.x2, row.y2),
        name=row.name,
        exit=row.exit,
        distance=row.distance,
        oracle_name=row.oracle_name,
    )


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
         "vector": _to_bytes(vectors[k]), "count": int(counts[k])}
        for k, label in enumerate(labels)
    ]  # fmt: skip


def _cluster_record(row: Row) -> ClusterRecord:
    return ClusterRecord(
        id=row.id,
        video_id=row.video_id,
        run_id=row.run_id,
        label=row.label,
        centroid=_to_vector(row.centroid),
        size=row.size,
        representative_object_id=row.representative_object_id,
        representative_crop=bytes(row.representative_crop),
        first_time=row.first_time,
        last_time=row.last_time,
        representative_score=row.representative_score,
    )


def _stored_objects(rows: Iterable[Row]) -> list[StoredObject]:
    """Objects from rows of (object columns, video_id, label, score), one row per label, sorted by id."""
    out = []
    for _, group in itertools.groupby(rows, key=lambda r: r.id):
        group = list(group)
        r = group[0]
        labels = {g.label: g.score for g in group if g.label is not None}
        out.append(
            StoredObject(r.id, r.video_id, r.run_id, r.frame, r.time, (r.x1, r.y1, r.x2, r.y2), labels)
        )
    return out


_OBJECT_COLUMNS = (
    OBJECTS.c.id,
    OBJECTS.c.run_id,
    OBJECTS.c.frame,
    OBJECTS.c.time,
    OBJECTS.c.x1,
    OBJECTS.c.y1,
    OBJECTS.c.x2,
    OBJECTS.c.y2,
    RUNS.c.video_id,
    LABELS.c.label,
    LABELS.c.score,
)


def _visible(mode: str | None) -> list[ColumnElement[bool]]:
    """The conditions on ``RUNS`` that make rows visible to queries: done runs (of one mode)."""
    conditions = [RUNS.c.status == "done"]
    if mode is not None:
        conditions.append(RUNS.c.mode == mode)
    return conditions


class Store:
    """SQL system of record; FAISS indexes beside it are derived (see mxn.storage.vectors)."""

    def __init__(
        self,
        url: str | os.PathLike = DEFAULT_URL,
        *,
        index_dir: str | Path | None = None,
        create: bool = True,
    ) -> None:
        """Open the database ``url`` (a URL or an SQLite file path) and check its schema version.

        With ``create`` a missing SQLite file or an empty database becomes a
        new store; without it (what read-only jobs use) only an existing mxn
        database opens, and nothing is written to find that out.
        """
        url = database_url(url)
        parsed = _parse_url(url)
        self.url = mask_url(url)
        path = _sqlite_file(parsed)
        if path is not None and not create and not path.is_file():
            found = "a folder" if path.is_dir() else "no such file"
            raise StoreError(
                f"no mxn database at {path} ({found}); check --db, or make one: mxn ingest VIDEO --db {path}"
            )
        try:
            self._engine = _make_engine(parsed, create)
            with self._engine.begin() as conn:
                _ensure_schema(conn, create)
        except StoreError as err:
            self._dispose()
            raise StoreError(f"{self.url}: {err}") from None
        except (SQLAlchemyError, OSError, ImportError) as err:
            self._dispose()
            raise StoreError(f"cannot open database {self.url}: {_cause(err)}") from err
        self.index_dir = Path(index_dir) if index_dir is not None else _default_index_dir(parsed)
        self._index_files = vec.IndexFiles(self.index_dir)
        self._vectors: dict[tuple[str | None, str], vec.ClusterVectors] = {}

    # -- life cycle
    def close(self) -> None:
        """Release every pooled connection (the store can still be used; it reconnects)."""
        self._dispose()

    def _dispose(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def write_refusal(self) -> str | None:
        """Why this process cannot write to the database (None: it can), found with no change made.

        A read-only file or folder, a ``mode=ro`` SQLite URI, a read-only
        PostgreSQL role or transaction: each refuses a real write, so one is
        tried (the schema row set to itself) and rolled back. Jobs that only
        write as a side effect (a query's verdict cache) ask first instead of
        failing after their work. A lock held by another writer is not a refusal.
        """
        try:
            with self._engine.connect() as conn, conn.begin() as transaction:
                conn.execute(update(SCHEMA).where(SCHEMA.c.id == 1).values(version=SCHEMA.c.version))
                transaction.rollback()
        except (SQLAlchemyError, self._engine.dialect.loaded_dbapi.Error) as err:
            cause = _cause(err)
            return None if "locked" in cause.lower() else cause
        return None

    @contextmanager
    def _begin(self, what: str) -> Iterator[Connection]:
        """One transaction; any database error becomes a StoreError saying what failed."""
        try:
            with self._engine.begin() as conn:
                yield conn
        except (SQLAlchemyError, self._engine.dialect.loaded_dbapi.Error) as err:
            raise StoreError(f"{what} failed on {self.url}: {_cause(err)}") from err

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
            "added_at": _now(),
        }
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(VIDEOS).values(values))
        except IntegrityError:  # another process added it meanwhile
            pass
        except SQLAlchemyError as err:
            raise StoreError(f"adding video {info.name} failed on {self.url}: {_cause(err)}") from err
        video = self.find_video(info.content_hash)
        assert video is not None
        return video

    def find_video(self, content_hash: str) -> VideoRecord | None:
        with self._begin("finding a video") as conn:
            row = conn.execute(select(VIDEOS).where(VIDEOS.c.content_hash == content_hash)).first()
        return None if row is None else _video_record(row)

    def videos(self) -> list[VideoRecord]:
        with self._begin("listing videos") as conn:
            return [_video_record(r) for r in conn.execute(select(VIDEOS).order_by(VIDEOS.c.id))]

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
            "started_at": _now(),
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

    # -- ranges of a run
    def ranges(self, run_id: int) -> list[RangeRecord]:
        """The ranges of a run, by index."""
        stmt = select(RANGES).where(RANGES.c.run_id == run_id).order_by(RANGES.c.index)
        with self._begin(f"listing the ranges of run {run_id}") as conn:
            return [_range_record(r) for r in conn.execute(stmt)]

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
            return _range_record(row)

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
            return [_run_record(r) for r in conn.execute(stmt)]

    def _run(self, conn: Connection, run_id: int, running: str | None = None) -> RunRecord:
        """Run ``run_id``; when ``running`` names an action, the run must still be running for it."""
        row = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).first()
        if row is None:  # for a writer: another process discarded the run it was working on
            error = RangeTakenError if running else StoreError
            raise error(f"no run {run_id} in {self.url}")
        run = _run_record(row)
        if running is not None and run.status != "running":
            raise StoreError(f"cannot {running} run {run_id}: it is {run.status}, not running")
        return run

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
            seq_ids = self._insert_objects(conn, run_id, objects)
            self._upsert_clusters(conn, run, clusters, seq_ids)
        for cluster in clusters:
            cluster.new_members.clear()

    def _insert_objects(
        self, conn: Connection, run_id: int, objects: Sequence[ObjectRecord]
    ) -> dict[int, int]:
        """Insert objects and their labels; returns seq -> id of the inserted objects."""
        if not objects:
            return {}
        rows = [
            {
                "run_id": run_id,
                "seq": int(o.seq),
                "frame": int(o.frame),
                "time": float(o.time),
                "x1": int(o.box[0]),
                "y1": int(o.box[1]),
                "x2": int(o.box[2]),
                "y2": int(o.box[3]),
                "feature": None if o.feature is None else _to_bytes(o.feature),
            }
            for o in objects
        ]
        _bulk_insert(conn, OBJECTS, rows)
        seqs = [r["seq"] for r in rows]
        # one indexed range scan instead of a RETURNING per row or an IN list of 10k seqs
        found = conn.execute(
            select(OBJECTS.c.seq, OBJECTS.c.id).where(
                OBJECTS.c.run_id == run_id, OBJECTS.c.seq.between(min(seqs), max(seqs))
            )
        )
        seq_ids = {seq: oid for seq, oid in found}
        labels = [
            {"object_id": seq_ids[o.seq], "label": label, "score": float(score)}
            for o in objects
            for label, score in o.labels.items()
        ]
        if labels:
            _bulk_insert(conn, LABELS, labels)
        return {seq: seq_ids[seq] for seq in seqs}

    def _object_ids(
        self, conn: Connection, run_id: int, seqs: set[int], known: dict[int, int]
    ) -> dict[int, int]:
        """seq -> id for the run's objects ``seqs`` (``known`` saves lookups); unknown seqs are an error."""
        ids = {s: known[s] for s in seqs if s in known}
        for batch in _batches(sorted(seqs - ids.keys())):
            stmt = select(OBJECTS.c.seq, OBJECTS.c.id).where(
                OBJECTS.c.run_id == run_id, OBJECTS.c.seq.in_(batch)
            )
            ids.update({seq: oid for seq, oid in conn.execute(stmt)})
        missing = sorted(seqs - ids.keys())
        if missing:
            raise StoreError(
                f"run {run_id}: clusters refer to objects that were never stored (seqs {missing[:10]})"
            )
        return ids

    def _cluster_ids(self, conn: Connection, run_id: int, seqs: Iterable[int]) -> dict[int, int]:
        ids: dict[int, int] = {}
        for batch in _batches(sorted(set(seqs))):
            stmt = select(CLUSTERS.c.seq, CLUSTERS.c.id).where(
                CLUSTERS.c.run_id == run_id, CLUSTERS.c.seq.in_(batch)
            )
            ids.update({seq: cid for seq, cid in conn.execute(stmt)})
        return ids

    def _upsert_clusters(
        self, conn: Connection, run: RunRecord, clusters: Sequence[ClusterState], known: dict[int, int]
    ) -> None:
        """Insert new clusters, update changed ones, append their new members."""
        if not clusters:
            return
        wanted = {c.representative_seq for c in clusters} | {m for c in clusters for m in c.new_members}
        object_ids = self._object_ids(conn, run.id, {int(s) for s in wanted}, known)

        def values(c: ClusterState) -> dict[str, Any]:
            return {
                "centroid": _to_bytes(c.centroid),
                "size": int(c.size),
                "representative_object_id": object_ids[int(c.representative_seq)],
                "representative_crop": bytes(c.representative_crop),
                "representative_distance": float(c.representative_distance),
                "active": bool(c.active),
                "first_time": float(c.first_time),
                "last_time": float(c.last_time),
            }

        cluster_ids = self._cluster_ids(conn, run.id, (c.seq for c in clusters))
        new = [c for c in clusters if c.seq not in cluster_ids]
        old = [c for c in clusters if c.seq in cluster_ids]
        if new:
            rows = [
                {"run_id": run.id, "video_id": run.video_id, "seq": int(c.seq), "label": c.label, **values(c)}
                for c in new
            ]
            _bulk_insert(conn, CLUSTERS, rows)
            cluster_ids |= self._cluster_ids(conn, run.id, (c.seq for c in new))
        if old:
            # bind names differ from the column names, which SQLAlchemy reserves for SET
            stmt = (
                update(CLUSTERS)
                .where(CLUSTERS.c.id == bindparam("b_id"))
                .values({name: bindparam(f"b_{name}") for name in _CLUSTER_MUTABLE})
            )
            params = [
                {"b_id": cluster_ids[c.seq], **{f"b_{k}": v for k, v in values(c).items()}} for c in old
            ]
            conn.execute(stmt, params)
        members = [
            {"cluster_id": cluster_ids[c.seq], "object_id": object_ids[int(m)]}
            for c in clusters
            for m in c.new_members
        ]
        if members:
            _bulk_insert(conn, MEMBERS, members)

    def load_clusters(
        self, run_id: int, active_only: bool = True, range_index: int | None = None, crops: bool = True
    ) -> list[ClusterState]:
        """A run's clusters (of one range) exactly as ingest last committed them (to resume), by seq.

        ``crops=False`` leaves ``representative_crop`` empty: what merging needs,
        without holding every representative's PNG in memory.
        """
        crop = CLUSTERS.c.representative_crop if crops else literal(b"").label("representative_crop")
        stmt = (
            select(
                CLUSTERS.c.seq,
                CLUSTERS.c.label,
                CLUSTERS.c.centroid,
                CLUSTERS.c.size,
                OBJECTS.c.seq.label("representative_seq"),
                crop,
                CLUSTERS.c.representative_distance,
                CLUSTERS.c.active,
                CLUSTERS.c.first_time,
                CLUSTERS.c.last_time,
            )
            .join(OBJECTS, OBJECTS.c.id == CLUSTERS.c.representative_object_id)
            .where(CLUSTERS.c.run_id == run_id)
            .order_by(CLUSTERS.c.seq)
        )
        if active_only:
            stmt = stmt.where(CLUSTERS.c.active.is_(True))
        if range_index is not None:
            low = range_seq_base(range_index)
            stmt = stmt.where(CLUSTERS.c.seq >= low, CLUSTERS.c.seq < range_seq_base(range_index + 1))
        with self._begin(f"loading the clusters of run {run_id}") as conn:
            rows = conn.execute(stmt).all()
        return [
            ClusterState(
                seq=r.seq,
                label=r.label,
                centroid=_to_vector(r.centroid),
                size=r.size,
                representative_seq=r.representative_seq,
                representative_crop=bytes(r.representative_crop),
                representative_distance=r.representative_distance,
                active=bool(r.active),
                first_time=r.first_time,
                last_time=r.last_time,
            )
            for r in rows
        ]

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
            self._apply_merges(conn, run, merges)
            conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(status="done", stats=stats, error=None, finished_at=_now())
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
            _delete_runs(conn, list(replaced))
            return self._run(conn, run_id)

    def _apply_merges(self, conn: Connection, run: RunRecord, merges: Sequence[ClusterMerge]) -> None:
        """Update each surviving cluster, move the absorbed clusters' members to it, delete them."""
        if not merges:
            return
        seqs = {m.into.seq for m in merges} | {s for m in merges for s in m.absorbed}
        ids = self._cluster_ids(conn, run.id, seqs)
        missing = sorted(seqs - ids.keys())
        if missing:
            raise StoreError(f"run {run.id}: cannot merge clusters that do not exist (seqs {missing[:10]})")
        # a merge keeps the surviving cluster's representative: only these columns change
        stmt = (
            update(CLUSTERS)
            .where(CLUSTERS.c.id == bindparam("b_id"))
            .values({name: bindparam(f"b_{name}") for name in _MERGED_COLUMNS})
        )
        params = [
            {
                "b_id": ids[m.into.seq],
                "b_centroid": _to_bytes(m.into.centroid),
                "b_size": int(m.into.size),
                "b_active": bool(m.into.active),
                "b_first_time": float(m.into.first_time),
                "b_last_time": float(m.into.last_time),
            }
            for m in merges
        ]
        conn.execute(stmt, params)
        for merge in merges:
            absorbed = [ids[s] for s in merge.absorbed]
            conn.execute(
                update(MEMBERS)
                .where(MEMBERS.c.cluster_id.in_(absorbed))
                .values(cluster_id=ids[merge.into.seq])
            )
            conn.execute(delete(CLUSTERS).where(CLUSTERS.c.id.in_(absorbed)))

    def fail_run(self, run_id: int, error: str) -> None:
        """Mark the run failed, keeping its error for the user (its rows stay, invisible to queries)."""
        with self._begin(f"failing run {run_id}") as conn:
            self._run(conn, run_id, running="fail")
            conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(status="failed", error=error, finished_at=_now())
            )

    def discard_run(self, run_id: int, *, forget_video: bool = False) -> None:
        """Delete the run and all its rows in one transaction.

        With ``forget_video`` (a file that failed to ingest: it leaves no
        trace) its video goes too, in the same transaction, unless another
        run or face run still uses it.
        """
        with self._begin(f"discarding run {run_id}") as conn:
            run = self._run(conn, run_id)
            _delete_runs(conn, [run_id])
            if forget_video:
                _forget_unused_video(conn, run.video_id)

    # -- reading the index (done runs only)
    def labels(self, *, mode: str | None = "mxn") -> list[str]:
        """Every label that has clusters, sorted."""
        stmt = (
            select(CLUSTERS.c.label)
            .distinct()
            .join(RUNS, RUNS.c.id == CLUSTERS.c.run_id)
            .where(*_visible(mode))
            .order_by(CLUSTERS.c.label)
        )
        with self._begin("listing labels") as conn:
            return list(conn.scalars(stmt))

    def clusters(
        self,
        label: str,
        video_id: int | None = None,
        start: float | None = None,
        end: float | None = None,
        *,
        mode: str | None = "mxn",
        crops: bool = True,
    ) -> list[ClusterRecord]:
        """The clusters of ``label`` whose [first_time, last_time] overlaps [start, end], by id.

        Each comes with its representative's stored score for ``label``
        (``representative_score``), which a query may use before any CNN runs.

        ``crops=False`` leaves ``representative_crop`` empty (``b""``): a query's
        candidate lookup, which fetches crops (:meth:`cluster_crops`) only for
        the clusters a CNN must see, not for those its verdict cache answers.
        """
        crop = CLUSTERS.c.representative_crop if crops else literal(b"").label("representative_crop")
        columns = [crop if c.name == "representative_crop" else c for c in CLUSTERS.c]
        score = LABELS.c.score.label("representative_score")
        stmt = (
            select(*columns, score)
            .join(RUNS, RUNS.c.id == CLUSTERS.c.run_id)
            .outerjoin(
                LABELS,
                (LABELS.c.object_id == CLUSTERS.c.representative_object_id) & (LABELS.c.label == label),
            )
            .where(CLUSTERS.c.label == label, *_visible(mode))
            .order_by(CLUSTERS.c.id)
        )
        if video_id is not None:
            stmt = stmt.where(CLUSTERS.c.video_id == video_id)
        if start is not None:
            stmt = stmt.where(CLUSTERS.c.last_time >= start)
        if end is not None:
            stmt = stmt.where(CLUSTERS.c.first_time <= end)
        with self._begin(f"listing clusters of {label!r}") as conn:
            return [_cluster_record(r) for r in conn.execute(stmt)]

    def cluster_crops(self, cluster_ids: Iterable[int]) -> dict[int, bytes]:
        """Representative crops (PNG) of clusters by id."""
        out: dict[int, bytes] = {}
        with self._begin("reading representative crops") as conn:
            for batch in _batches(sorted({int(i) for i in cluster_ids})):
                stmt = select(CLUSTERS.c.id, CLUSTERS.c.representative_crop).where(CLUSTERS.c.id.in_(batch))
                out.update({cid: bytes(crop) for cid, crop in conn.execute(stmt)})
        return out

    def cluster_members(self, cluster_id: int) -> list[StoredObject]:
        """The objects of a cluster (of a done run), with all their labels, by id."""
        stmt = _objects_select(lambda s: s.join(MEMBERS, MEMBERS.c.object_id == OBJECTS.c.id)).where(
            MEMBERS.c.cluster_id == cluster_id, *_visible(None)
        )
        with self._begin(f"reading the members of cluster {cluster_id}") as conn:
            return _stored_objects(conn.execute(stmt))

    def members(self, cluster_ids: Iterable[int]) -> dict[int, list[StoredObject]]:
        """The objects of many clusters at once (of done runs): cluster id -> objects by id."""
        out: dict[int, list[StoredObject]] = {}
        with self._begin("reading cluster members") as conn:
            for batch in _batches(sorted({int(i) for i in cluster_ids})):
                pairs = conn.execute(
                    select(MEMBERS.c.cluster_id, MEMBERS.c.object_id).where(MEMBERS.c.cluster_id.in_(batch))
                ).all()
                stmt = _objects_select(lambda s: s).where(
                    OBJECTS.c.id.in_(select(MEMBERS.c.object_id).where(MEMBERS.c.cluster_id.in_(batch))),
                    *_visible(None),
                )
                found = {o.id: o for o in _stored_objects(conn.execute(stmt))}
                for cid, oid in sorted(pairs):
                    if oid in found:
                        out.setdefault(cid, []).append(found[oid])
        return out

    def objects(
        self,
        video_id: int | None = None,
        start: float | None = None,
        end: float | None = None,
        label: str | None = None,
        *,
        mode: str | None = "mxn",
    ) -> list[StoredObject]:
        """Objects of done runs, optionally of one video, in [start, end] seconds, indexed under ``label``."""
        stmt = _objects_select(lambda s: s).where(*_visible(mode))
        if video_id is not None:
            stmt = stmt.where(RUNS.c.video_id == video_id)
        if start is not None:
            stmt = stmt.where(OBJECTS.c.time >= start)
        if end is not None:
            stmt = stmt.where(OBJECTS.c.time <= end)
        if label is not None:
            stmt = stmt.where(OBJECTS.c.id.in_(select(LABELS.c.object_id).where(LABELS.c.label == label)))
        with self._begin("listing objects") as conn:
            return _stored_objects(conn.execute(stmt))

    def object_features(self, object_ids: list[int]) -> dict[int, Any]:
        """id -> float32 feature vector, for the given objects of done runs that have one."""
        out: dict[int, Any] = {}
        with self._begin("reading object features") as conn:
            for batch in _batches(sorted({int(i) for i in object_ids})):
                stmt = (
                    select(OBJECTS.c.id, OBJECTS.c.feature)
                    .join(RUNS, RUNS.c.id == OBJECTS.c.run_id)
                    .where(OBJECTS.c.id.in_(batch), OBJECTS.c.feature.is_not(None), *_visible(None))
                )
                out.update({oid: _to_vector(feature) for oid, feature in conn.execute(stmt)})
        return out

    # -- cached query verdicts
    def verdicts(self, cluster_ids: Iterable[int], label: str, model: str) -> dict[int, Verdict]:
        """The cached verdicts of ``model`` on these clusters for ``label`` (cluster id -> verdict)."""
        out: dict[int, Verdict] = {}
        with self._begin("reading cached verdicts") as conn:
            for batch in _batches(sorted({int(i) for i in cluster_ids})):
                stmt = select(VERDICTS).where(
                    VERDICTS.c.cluster_id.in_(batch), VERDICTS.c.label == label, VERDICTS.c.model == model
                )
                for r in conn.execute(stmt):
                    out[r.cluster_id] = Verdict(r.cluster_id, r.outcome, r.exit, r.score)
        return out

    def save_verdicts(self, label: str, model: str, verdicts: Sequence[Verdict]) -> None:
        """Cache verdicts (replacing any of the same cluster, label and model) in one transaction."""
        if not verdicts:
            return
        now = _now()
        rows = [
            {"cluster_id": v.cluster_id, "label": label, "model": model, "outcome": v.outcome,
             "exit": v.exit, "score": float(v.score), "created_at": now}
            for v in verdicts
        ]  # fmt: skip
        with self._begin("caching verdicts") as conn:
            for batch in _batches([v.cluster_id for v in verdicts]):
                conn.execute(
                    delete(VERDICTS).where(
                        VERDICTS.c.cluster_id.in_(batch), VERDICTS.c.label == label, VERDICTS.c.model == model
                    )
                )
            conn.execute(insert(VERDICTS), rows)

    def counts(self) -> dict[str, int]:
        """Rows per table, whatever the run status (for tests and ``mxn`` status output)."""
        tables = {
            "videos": VIDEOS,
            "runs": RUNS,
            "objects": OBJECTS,
            "object_labels": LABELS,
            "clusters": CLUSTERS,
            "cluster_members": MEMBERS,
            "query_verdicts": VERDICTS,
            "face_movies": FACE_MOVIES,
            "face_runs": FACE_RUNS,
            "face_rows": FACE_ROWS,
            "face_features": FACE_FEATURES,
        }
        with self._begin("counting rows") as conn:
            return {
                name: int(conn.scalar(select(func.count()).select_from(t)) or 0) for name, t in tables.items()
            }

    # -- face labelling (Algorithm 3): movies, runs per video, labelled faces, the per-exit databases
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
            now = _now()
            values = {"name": name, "model_sha": model_sha, "config": config or {}, "stats": {},
                      "created_at": now, "updated_at": now}  # fmt: skip
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(FACE_MOVIES).values(values))
            except IntegrityError:  # another process created it meanwhile
                pass
            except SQLAlchemyError as err:
                raise StoreError(f"creating face movie {name!r} failed on {self.url}: {_cause(err)}") from err
            with self._begin(f"opening face movie {name!r}") as conn:
                row = conn.execute(select(FACE_MOVIES).where(FACE_MOVIES.c.name == name)).one()
        movie = _face_movie_record(row)
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
            return [_face_movie_record(r) for r in rows]

    def face_runs(self, movie_id: int, video_id: int | None = None) -> list[FaceRunRecord]:
        """A movie's labelling runs of every status, oldest first."""
        stmt = select(FACE_RUNS).where(FACE_RUNS.c.movie_id == movie_id).order_by(FACE_RUNS.c.id)
        if video_id is not None:
            stmt = stmt.where(FACE_RUNS.c.video_id == video_id)
        with self._begin(f"listing the runs of face movie {movie_id}") as conn:
            return [_face_run_record(r) for r in conn.execute(stmt)]

    def get_face_run(self, run_id: int) -> FaceRunRecord:
        with self._begin(f"reading face run {run_id}") as conn:
            return self._face_run(conn, run_id)

    def _face_run(self, conn: Connection, run_id: int, running: str | None = None) -> FaceRunRecord:
        """Face run ``run_id``; when ``running`` names an action, the run must still be running for it."""
        row = conn.execute(select(FACE_RUNS).where(FACE_RUNS.c.id == run_id)).first()
        if row is None:
            raise StoreError(f"no face run {run_id} in {self.url}")
        run = _face_run_record(row)
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
                      "stats": {}, "started_at": _now()}  # fmt: skip
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
            _bulk_insert(conn, FACE_ROWS, values)
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
                _bulk_insert(conn, FACE_FEATURES, feature_rows)
            progress: dict[str, Any] = {"next_frame": max(int(next_frame), run.next_frame)}
            if stats is not None:
                progress["stats"] = stats
            conn.execute(update(FACE_RUNS).where(FACE_RUNS.c.id == run_id).values(progress))
            conn.execute(
                update(FACE_MOVIES).where(FACE_MOVIES.c.id == run.movie_id).values(updated_at=_now())
            )

    def finish_face_run(
        self, run_id: int, stats: dict[str, Any], movie_stats: dict[str, Any] | None = None
    ) -> FaceRunRecord:
        """Mark the run done and, in the same transaction, delete the labelling of the video it replaces.

        ``movie_stats``, when given, becomes the movie's stats.
        """
        with self._begin(f"finishing face run {run_id}") as conn:
            run = self._face_run(conn, run_id, running="finish")
            now = _now()
            conn.execute(
                update(FACE_RUNS)
                .where(FACE_RUNS.c.id == run_id)
                .values(status="done", stats=stats, error=None, finished_at=now)
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
            movie_values: dict[str, Any] = {"updated_at": now}
            if movie_stats is not None:
                movie_values["stats"] = movie_stats
            conn.execute(update(FACE_MOVIES).where(FACE_MOVIES.c.id == run.movie_id).values(movie_values))
            return self._face_run(conn, run_id)

    def fail_face_run(self, run_id: int, error: str) -> None:
        """Mark the run failed, keeping its error; its committed rows stay and a later start resumes it."""
        with self._begin(f"failing face run {run_id}") as conn:
            self._face_run(conn, run_id, running="fail")
            conn.execute(
                update(FACE_RUNS)
                .where(FACE_RUNS.c.id == run_id)
                .values(status="failed", error=error, finished_at=_now())
            )

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
            _forget_unused_video(conn, run.video_id)
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
            vectors = [_to_vector(r.vector) for r in group]
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
            return [_face_row_record(r) for r in conn.execute(stmt)]

    # -- derived vector indexes
    def cluster_index(self, label: str, mode: str | None = "mxn") -> vec.ClusterVectors:
        """The FAISS index over the centroids of ``label``'s done clusters (ids = cluster ids).

        Served from memory or from the file beside the database when its
        fingerprint still matches SQL; otherwise rebuilt from SQL and saved.
        """
        key = (mode, label)
        with self._begin(f"building the {label!r} cluster index") as conn:
            fp = vec.fingerprint(_fingerprint_rows(conn, label, mode), SCHEMA_VERSION)
            cached = self._vectors.get(key)
            if cached is not None and cached.fingerprint == fp:
                return cached
            vectors = self._index_files.load(mode, label, fp)
            if vectors is None:
                vectors = _build_vectors(conn, label, mode)
                self._index_files.save(vectors)
        self._vectors[key] = vectors
        return vectors


def _objects_select(joins: Callable[[Any], Any]) -> Select:
    """Object rows with their video and one row per label; ``joins`` adds joins to the objects table."""
    source = joins(OBJECTS.join(RUNS, RUNS.c.id == OBJECTS.c.run_id))
    source = source.outerjoin(LABELS, LABELS.c.object_id == OBJECTS.c.id)
    return select(*_OBJECT_COLUMNS).select_from(source).order_by(OBJECTS.c.id, LABELS.c.label)


def _bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows: COPY on PostgreSQL (executemany there is a round trip per row), else executemany.

    Every row has the same keys. COPY runs on the same driver connection, so it
    is part of the surrounding transaction.
    """
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), rows)
        return
    columns = list(rows[0])
    names = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in columns)
    sql = f"COPY {conn.dialect.identifier_preparer.quote(table.name)} ({names}) FROM STDIN"
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def _delete_runs(conn: Connection, run_ids: list[int]) -> None:
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


def _forget_unused_video(conn: Connection, video_id: int) -> None:
    """Delete a video no ingest run and no face run refers to (a file that failed leaves no trace)."""
    for runs in (RUNS, FACE_RUNS):
        if conn.scalar(select(func.count(runs.c.id)).where(runs.c.video_id == video_id)):
            return
    conn.execute(delete(VIDEOS).where(VIDEOS.c.id == video_id))


def _fingerprint_rows(conn: Connection, label: str, mode: str | None) -> list[tuple[int, int, int, int]]:
    """(run id, clusters, max cluster id, sum of sizes) per done run with clusters of ``label``."""
    stmt = (
        select(CLUSTERS.c.run_id, func.count(), func.max(CLUSTERS.c.id), func.sum(CLUSTERS.c.size))
        .join(RUNS, RUNS.c.id == CLUSTERS.c.run_id)
        .where(CLUSTERS.c.label == label, *_visible(mode))
        .group_by(CLUSTERS.c.run_id)
    )
    return [(int(a), int(b), int(c), int(d)) for a, b, c, d in conn.execute(stmt)]


def _build_vectors(conn: Connection, label: str, mode: str | None) -> vec.ClusterVectors:
    """A fresh index from SQL, fingerprinted from the very rows it holds (so it cannot be stale-but-valid)."""
    stmt = (
        select(CLUSTERS.c.id, CLUSTERS.c.run_id, CLUSTERS.c.size, CLUSTERS.c.centroid)
        .join(RUNS, RUNS.c.id == CLUSTERS.c.run_id)
        .where(CLUSTERS.c.label == label, *_visible(mode))
        .order_by(CLUSTERS.c.id)
    )
    rows = conn.execute(stmt).all()
    per_run: dict[int, tuple[int, int, int, int]] = {}
    for cid, run_id, size, _ in rows:
        n, top, total = per_run.get(run_id, (run_id, 0, 0, 0))[1:]
        per_run[run_id] = (run_id, n + 1, max(top, cid), total + size)
    fp = vec.fingerprint(list(per_run.values()), SCHEMA_VERSION)
    ids = np.array([r.id for r in rows], np.int64)
    try:
        return vec.build(mode, label, fp, ids, [bytes(r.centroid) for r in rows])
    except ValueError as err:
        raise StoreError(str(err)) from err
