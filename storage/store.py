"""The store: one small API over the SQL schema, the same for SQLite and PostgreSQL.

Ingest writes through it chunk by chunk (one transaction per chunk, so a
killed ingest resumes from its last commit); queries read through it and
only ever see finished (``done``) runs. Every database error leaves it as a
:class:`StoreError`, so callers never import SQLAlchemy.

:class:`Store` is assembled from one part per aggregate, all on one
connection (:class:`mxn.storage.database.Database`, one engine per store):
videos and ingest runs (:mod:`mxn.storage.runs`), the label index
(:mod:`mxn.storage.label_index`), the query verdict cache
(:mod:`mxn.storage.verdicts`) and face labelling (:mod:`mxn.storage.faces`).
The names callers import from here (errors, URL helpers) are re-exported.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import func, select

from .database import (
    DEFAULT_URL,
    RangeTakenError,
    StoreError,
    database_url,
    default_url,
    mask_url,
    sqlite_path,
)
from .faces import FaceLabels
from .label_index import LabelIndex
from .runs import VideoRuns
from .sql import (
    CLUSTERS,
    FACE_FEATURES,
    FACE_MOVIES,
    FACE_ROWS,
    FACE_RUNS,
    LABELS,
    MEMBERS,
    OBJECTS,
    RUNS,
    VERDICTS,
    VIDEOS,
)
from .verdicts import VerdictCache

__all__ = [
    "DEFAULT_URL",
    "RangeTakenError",
    "Store",
    "StoreError",
    "database_url",
    "default_url",
    "mask_url",
    "sqlite_path",
]

#: What :meth:`Store.counts` counts, by the names tests and status output use.
_COUNTED = {
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


class Store(VideoRuns, LabelIndex, VerdictCache, FaceLabels):
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
        database opens, and nothing is written to find that out. The FAISS
        caches go in ``index_dir`` (default: beside an SQLite file).
        """
        super().__init__(url, create=create)
        self._open_vectors(index_dir)

    def counts(self) -> dict[str, int]:
        """Rows per table, whatever the run status (for tests and ``mxn`` status output)."""
        with self._begin("counting rows") as conn:
            return {
                name: int(conn.scalar(select(func.count()).select_from(t)) or 0)
                for name, t in _COUNTED.items()
            }
