"""The SQL vocabulary the store's aggregates share: table handles, vectors as bytes, batching, bulk inserts.

Kept apart from the aggregates so each of them (runs, the label index,
verdicts, faces) writes rows the same way: vectors as float32 bytes, long
``IN (...)`` lists in batches, and tens of thousands of rows per chunk with
COPY on PostgreSQL rather than a round trip per row.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Table, insert, update

from .schema import (
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
    Video,
)

VIDEOS = Video.__table__
RUNS = IngestRun.__table__
RANGES = IngestRange.__table__
OBJECTS = DetectedObject.__table__
LABELS = ObjectLabel.__table__
CLUSTERS = Cluster.__table__
MEMBERS = ClusterMember.__table__
VERDICTS = QueryVerdict.__table__
FACE_MOVIES = FaceMovie.__table__
FACE_RUNS = FaceRun.__table__
FACE_ROWS = LabelledFace.__table__
FACE_FEATURES = FaceFeature.__table__

#: Rows per ``IN (...)`` list: far below SQLite's and PostgreSQL's parameter limits.
BATCH = 1000


def to_bytes(vector: np.ndarray) -> bytes:
    """float32 little-endian bytes: the storage form of every vector."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def to_vector(data: bytes) -> np.ndarray:
    """A writable native float32 array, bit-identical to what was stored."""
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def box(row: Any) -> tuple[int, int, int, int]:
    """The ``(x1, y1, x2, y2)`` box of an object or face row."""
    return (row.x1, row.y1, row.x2, row.y2)


def batches(values: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    it = iter(values)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def now() -> datetime:
    return datetime.now(UTC)


def bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
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


def mark_failed(conn: Connection, runs: Table, run_id: int, error: str) -> None:
    """Mark run ``run_id`` of ``runs`` (ingest or face runs) failed with ``error``; its rows stay."""
    conn.execute(
        update(runs).where(runs.c.id == run_id).values(status="failed", error=error, finished_at=now())
    )
