"""The SQL schema of the system of record, identical on SQLite and PostgreSQL.

Only portable column types are used (JSON, LargeBinary, Double, Integer,
timezone-aware DateTime), so one declaration serves both databases and a
test run on SQLite means something for PostgreSQL.

Ids are never reused (``sqlite_autoincrement``; PostgreSQL sequences never
go back), so an id seen once always means the same row: the FAISS indexes
and any cache built on ids can tell a replaced run from the old one.

Vectors are stored as raw little-endian float32 bytes: exact (a resumed
ingest continues bit for bit), compact, and readable without pickle.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Bump when the tables change; a store refuses a database of another version.
SCHEMA_VERSION = 4

#: Versions a store upgrades in place (each added tables; version 4 also widened
#: ``objects.seq`` and ``clusters.seq`` to 64 bits, see :data:`WIDENED_COLUMNS`).
UPGRADABLE_FROM = (1, 2, 3)

#: Columns that version 4 widened from INTEGER to BIGINT: a range's seqs start at
#: ``range_index << 32`` (see :class:`IngestRange`). SQLite's INTEGER already is 64-bit.
WIDENED_COLUMNS = (("objects", "seq"), ("clusters", "seq"))

#: BIGINT on PostgreSQL (objects outgrow 2^31 over many videos); on SQLite only
#: ``INTEGER PRIMARY KEY`` is the auto-incrementing rowid, so the variant says INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")

_AUTOINCREMENT = {"sqlite_autoincrement": True}


class Base(DeclarativeBase):
    """Declarative base of the mxn tables."""

    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads this class attribute)
        dict[str, Any]: JSON,
        float: Double,
        bytes: LargeBinary,
        datetime: DateTime(timezone=True),
    }


class SchemaInfo(Base):
    """One row holding the schema version, checked whenever a store opens."""

    __tablename__ = "schema_info"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class Video(Base):
    """A video file, identified by the hash of its bytes (names and paths change)."""

    __tablename__ = "videos"
    __table_args__ = (_AUTOINCREMENT,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    fps: Mapped[float]
    width: Mapped[int]
    height: Mapped[int]
    frame_count: Mapped[int]
    duration_s: Mapped[float]
    added_at: Mapped[datetime]


class IngestRun(Base):
    """One ingest of one video in one mode; only ``done`` runs are visible to queries."""

    __tablename__ = "ingest_runs"
    __table_args__ = (Index("ix_ingest_runs_video_mode", "video_id", "mode"), _AUTOINCREMENT)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id"))
    mode: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]]
    model_sha: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    next_frame: Mapped[int]
    stats: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class IngestRange(Base):
    """One range of frames of a run (added in schema version 4): the unit of work and of resumption.

    A run is split into ranges of ``range_frames`` frames; each range is ingested
    on its own (by one process or by a Dask worker), commits chunk by chunk and
    resumes at ``next_frame``. Its objects and clusters are numbered from
    ``index << 32`` so ranges never collide, whoever runs them. ``owner`` names
    the attempt that holds the range: a chunk commits only while its attempt
    still owns the range, so a worker presumed dead cannot write beside its retry.
    """

    __tablename__ = "ingest_ranges"

    run_id: Mapped[int] = mapped_column(ForeignKey("ingest_runs.id"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    start_frame: Mapped[int]
    end_frame: Mapped[int | None]  # None: to the end of the video
    status: Mapped[str] = mapped_column(String(16))
    next_frame: Mapped[int]
    stats: Mapped[dict[str, Any]]
    owner: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int]
    error: Mapped[str | None] = mapped_column(Text)


class DetectedObject(Base):
    """A detected object; ``seq`` is the run's own number for it (the client-side key)."""

    __tablename__ = "objects"
    __table_args__ = (
        UniqueConstraint("run_id", "seq", name="uq_objects_run_seq"),
        Index("ix_objects_run_time", "run_id", "time"),
        _AUTOINCREMENT,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ingest_runs.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    frame: Mapped[int]
    time: Mapped[float]
    x1: Mapped[int]
    y1: Mapped[int]
    x2: Mapped[int]
    y2: Mapped[int]
    feature: Mapped[bytes | None]


class ObjectLabel(Base):
    """A label an object is indexed under, with its score."""

    __tablename__ = "object_labels"
    __table_args__ = (Index("ix_object_labels_label", "label"),)

    object_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("objects.id"), primary_key=True)
    label: Mapped[str] = mapped_column(String(128), primary_key=True)
    score: Mapped[float]


class Cluster(Base):
    """A per-label cluster of a run; ``seq`` is the run's own number for it."""

    __tablename__ = "clusters"
    __table_args__ = (
        UniqueConstraint("run_id", "seq", name="uq_clusters_run_seq"),
        Index("ix_clusters_label_video", "label", "video_id"),
        # a query's candidates in a time window: the times sit in the index, so the rows (whose
        # representative crops push the times onto overflow pages in SQLite) are read only for hits
        Index("ix_clusters_label_video_time", "label", "video_id", "last_time", "first_time"),
        # the FAISS caches' fingerprint reads (run, count, max id, sum of sizes) from the index alone
        Index("ix_clusters_label_run_size", "label", "run_id", "id", "size"),
        Index("ix_clusters_run_label", "run_id", "label"),
        # deleting objects checks this foreign key; without an index that is a scan per object
        Index("ix_clusters_representative", "representative_object_id"),
        _AUTOINCREMENT,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ingest_runs.id"))
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    label: Mapped[str] = mapped_column(String(128))
    centroid: Mapped[bytes]
    size: Mapped[int]
    representative_object_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("objects.id"))
    representative_crop: Mapped[bytes]
    representative_distance: Mapped[float]
    active: Mapped[bool] = mapped_column(Boolean)
    first_time: Mapped[float]
    last_time: Mapped[float]


class ClusterMember(Base):
    """An object in a cluster (one row per cluster of each of its labels)."""

    __tablename__ = "cluster_members"
    __table_args__ = (Index("ix_cluster_members_object", "object_id"),)

    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"), primary_key=True)
    object_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("objects.id"), primary_key=True)


class QueryVerdict(Base):
    """A cached query decision on one cluster's representative (added in schema version 2).

    ``model`` names who decided and with what: ``gt:<sha>`` for the
    ground-truth CNN, ``mxn:<sha>`` for the query MXN with one set of
    thresholds. A repeated query finds its verdicts here and runs no CNN.
    ``outcome`` is ``accept``, ``reject`` or (MXN only) ``undecided``.
    """

    __tablename__ = "query_verdicts"

    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id"), primary_key=True)
    label: Mapped[str] = mapped_column(String(128), primary_key=True)
    model: Mapped[str] = mapped_column(String(96), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))
    exit: Mapped[int | None]
    score: Mapped[float]
    created_at: Mapped[datetime]


# -- face labelling (added in schema version 3) -----------------------------------------------------------


class FaceMovie(Base):
    """A face-labelling project: one cast over one or more video files, labelled with one face model.

    Algorithm 3's databases ``D[M_i]`` belong to the movie (see
    :class:`FaceFeature`), so a labelled movie can be reopened and extended
    with more videos; the FAISS indexes over them are rebuilt from these rows.
    """

    __tablename__ = "face_movies"
    __table_args__ = (_AUTOINCREMENT,)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    model_sha: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]]
    stats: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class FaceRun(Base):
    """One labelling pass of one video for one movie; only ``done`` runs' rows are the labelling."""

    __tablename__ = "face_runs"
    __table_args__ = (Index("ix_face_runs_movie_video", "movie_id", "video_id"), _AUTOINCREMENT)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    movie_id: Mapped[int] = mapped_column(ForeignKey("face_movies.id"))
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id"))
    status: Mapped[str] = mapped_column(String(16))
    next_frame: Mapped[int]
    stats: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class LabelledFace(Base):
    """A face found in a frame and the name it got; ``seq`` is the run's own number for it.

    ``exit`` is the MXN exit that named it, or NULL when the oracle decided;
    ``oracle_name`` is what the oracle said whenever it was asked.
    """

    __tablename__ = "face_rows"
    __table_args__ = (
        UniqueConstraint("run_id", "seq", name="uq_face_rows_run_seq"),
        Index("ix_face_rows_run_time", "run_id", "time"),
        Index("ix_face_rows_name", "name"),
        _AUTOINCREMENT,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("face_runs.id"))
    seq: Mapped[int]
    frame: Mapped[int]
    time: Mapped[float]
    x1: Mapped[int]
    y1: Mapped[int]
    x2: Mapped[int]
    y2: Mapped[int]
    name: Mapped[str] = mapped_column(String(128))
    exit: Mapped[int | None]
    distance: Mapped[float | None]
    oracle_name: Mapped[str | None] = mapped_column(String(128))


class FaceFeature(Base):
    """One label's running-average feature in one exit's database ``D[M_exit]`` of a movie.

    ``exit`` -1 holds the oracle's reference embeddings of unknown people (so
    ``unknown-N`` names stay stable across sessions). ``ordinal`` keeps the
    order labels were first seen in, which the rebuilt FAISS ids follow.
    """

    __tablename__ = "face_features"

    movie_id: Mapped[int] = mapped_column(ForeignKey("face_movies.id"), primary_key=True)
    exit: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    label: Mapped[str] = mapped_column(String(128), primary_key=True)
    ordinal: Mapped[int]
    vector: Mapped[bytes]
    count: Mapped[int]
