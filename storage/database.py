"""The connection under the store: what a ``--db`` names, the engine, the schema, transactions.

Every aggregate of the store (runs, the label index, verdicts, faces) works
through one :class:`Database`, so a store holds ONE SQLAlchemy engine and
turns every database error into a :class:`StoreError` in one place. The
rules for opening live here too: a path is an SQLite file, only an empty
database becomes an mxn store (and only when asked to), a database of
another program is refused, and two processes making one schema at once
take turns.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import numpy as np
from sqlalchemy import Connection, Engine, Table, create_engine, event, func, insert, inspect, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from .schema import (
    SCHEMA_VERSION,
    UPGRADABLE_FROM,
    WIDENED_COLUMNS,
    Base,
    DetectedObject,
    IngestRun,
    SchemaInfo,
    Video,
)

log = logging.getLogger(__name__)

#: Used when the user gives no ``--db``.
DEFAULT_URL = "sqlite:///mxn.db"

SCHEMA = SchemaInfo.__table__


class StoreError(Exception):
    """A database that cannot be opened or used: bad URL, wrong schema version, unreachable server."""


class RangeTakenError(StoreError):
    """A write for a range that another attempt has taken over (or whose run was discarded meanwhile)."""


# -- what a --db names -----------------------------------------------------------------------------------

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


def sqlite_path(url: str | os.PathLike) -> Path | None:
    """The file of an SQLite database URL or path (None: another backend, or an in-memory database)."""
    return _sqlite_file(_parse_url(database_url(url)))


def default_index_dir(url: URL) -> Path | None:
    """Where the FAISS caches of a database live when the caller does not say (None: memory only)."""
    if url.get_backend_name() == "sqlite":
        if _is_memory(url):
            return None
        db = Path(str(url.database)).expanduser().resolve()
        return db.with_name(db.name + ".faiss")
    name = f"{url.host or 'localhost'}_{url.port or 5432}_{url.database or ''}"
    return Path.cwd() / ".mxn-faiss" / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


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


def _sqlite_file(url: URL) -> Path | None:
    """The file an SQLite URL names (``file:`` URIs included), or None for an in-memory database."""
    if url.get_backend_name() != "sqlite" or _is_memory(url):
        return None
    name = str(url.database)
    if name.startswith("file:"):
        name = name[len("file:") :].split("?", 1)[0]
    return Path(name).expanduser()


# -- the engine ------------------------------------------------------------------------------------------


def cause(err: BaseException) -> str:
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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys are off by default in SQLite; a busy timeout lets a reader wait for a writer."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


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


# -- the schema ------------------------------------------------------------------------------------------


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
_EXPECTED = (
    f"mxn's tables ({SCHEMA.name}, {Video.__tablename__}, {IngestRun.__tablename__}, "
    f"{DetectedObject.__tablename__}, ...)"
)


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


class Database:
    """One open mxn database: its engine, its (masked) URL, and transactions that fail as StoreErrors.

    The store's aggregates are built on this class; only the assembled
    :class:`mxn.storage.store.Store` is meant to be opened.
    """

    def __init__(self, url: str | os.PathLike = DEFAULT_URL, *, create: bool = True) -> None:
        """Open the database ``url`` (a URL or an SQLite file path) and check its schema version.

        With ``create`` a missing SQLite file or an empty database becomes a
        new store; without it (what read-only jobs use) only an existing mxn
        database opens, and nothing is written to find that out.
        """
        url = database_url(url)
        parsed = _parse_url(url)
        self.url = mask_url(url)
        self._location = parsed
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
            raise StoreError(f"cannot open database {self.url}: {cause(err)}") from err

    # -- life cycle
    def close(self) -> None:
        """Release every pooled connection (the store can still be used; it reconnects)."""
        self._dispose()

    def _dispose(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

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
            text = cause(err)
            return None if "locked" in text.lower() else text
        return None

    @contextmanager
    def _begin(self, what: str) -> Iterator[Connection]:
        """One transaction; any database error becomes a StoreError saying what failed."""
        try:
            with self._engine.begin() as conn:
                yield conn
        except (SQLAlchemyError, self._engine.dialect.loaded_dbapi.Error) as err:
            raise StoreError(f"{what} failed on {self.url}: {cause(err)}") from err

    def _insert_once(self, table: Table, values: dict[str, Any], what: str) -> None:
        """Insert a row under a unique key in its own transaction; a row another process put first stands.

        For rows found by that key right after (a video by content hash, a
        face movie by name), so two processes adding the same one both get it.
        """
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(table).values(values))
        except IntegrityError:  # another process added it meanwhile
            pass
        except SQLAlchemyError as err:
            raise StoreError(f"{what} failed on {self.url}: {cause(err)}") from err
