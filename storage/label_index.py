"""The label index: detected objects, their clusters and members, and the FAISS indexes over centroids.

Ingest writes it a chunk at a time (the functions here run inside the
chunk's transaction, see :mod:`mxn.storage.runs`); queries read it, and see
only the rows of ``done`` runs. Bulk paths use Core ``executemany`` inserts
and resolve the run-local keys (``seq``) to ids with one indexed range
query, because a chunk may hold tens of thousands of objects. The FAISS
indexes (:mod:`mxn.storage.vectors`) are caches derived from these rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    bindparam,
    delete,
    func,
    literal,
    select,
    update,
)

from . import vectors as vec
from .database import Database, StoreError, default_index_dir
from .records import (
    ClusterMerge,
    ClusterRecord,
    ClusterState,
    ObjectRecord,
    RunRecord,
    StoredObject,
    from_row,
    range_seq_base,
)
from .schema import SCHEMA_VERSION
from .sql import CLUSTERS, LABELS, MEMBERS, OBJECTS, RUNS, batches, box, bulk_insert, to_bytes, to_vector

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


class LabelIndex(Database):
    """Reading the label index of done runs, and the FAISS index of each label's cluster centroids."""

    def _open_vectors(self, index_dir: str | Path | None) -> None:
        """Keep the FAISS caches in ``index_dir`` (None: beside the database, or in memory only)."""
        self.index_dir = Path(index_dir) if index_dir is not None else default_index_dir(self._location)
        self._index_files = vec.IndexFiles(self.index_dir)
        self._vectors: dict[tuple[str | None, str], vec.ClusterVectors] = {}

    def load_clusters(
        self, run_id: int, active_only: bool = True, range_index: int | None = None, crops: bool = True
    ) -> list[ClusterState]:
        """A run's clusters (of one range) exactly as ingest last committed them (to resume), by seq.

        ``crops=False`` leaves ``representative_crop`` empty: what merging needs,
        without holding every representative's crop in memory.
        """
        stmt = (
            select(
                CLUSTERS.c.seq,
                CLUSTERS.c.label,
                CLUSTERS.c.centroid,
                CLUSTERS.c.size,
                OBJECTS.c.seq.label("representative_seq"),
                _crop_column(crops),
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
            from_row(
                ClusterState,
                r,
                centroid=to_vector(r.centroid),
                representative_crop=bytes(r.representative_crop),
                active=bool(r.active),
            )
            for r in rows
        ]

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
        columns = [_crop_column(crops) if c.name == "representative_crop" else c for c in CLUSTERS.c]
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
            return [
                from_row(
                    ClusterRecord,
                    r,
                    centroid=to_vector(r.centroid),
                    representative_crop=bytes(r.representative_crop),
                )
                for r in conn.execute(stmt)
            ]

    def cluster_crops(self, cluster_ids: Iterable[int]) -> dict[int, bytes]:
        """Representative crops of clusters by id, as stored (see :mod:`mxn.storage.crop_codec`)."""
        out: dict[int, bytes] = {}
        with self._begin("reading representative crops") as conn:
            for batch in batches(sorted({int(i) for i in cluster_ids})):
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
            for batch in batches(sorted({int(i) for i in cluster_ids})):
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
            for batch in batches(sorted({int(i) for i in object_ids})):
                stmt = (
                    select(OBJECTS.c.id, OBJECTS.c.feature)
                    .join(RUNS, RUNS.c.id == OBJECTS.c.run_id)
                    .where(OBJECTS.c.id.in_(batch), OBJECTS.c.feature.is_not(None), *_visible(None))
                )
                out.update({oid: to_vector(feature) for oid, feature in conn.execute(stmt)})
        return out

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


# -- writing a chunk (inside the chunk's transaction) ----------------------------------------------------


def insert_objects(conn: Connection, run_id: int, objects: Sequence[ObjectRecord]) -> dict[int, int]:
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
            "feature": None if o.feature is None else to_bytes(o.feature),
        }
        for o in objects
    ]
    bulk_insert(conn, OBJECTS, rows)
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
    bulk_insert(conn, LABELS, labels)
    return {seq: seq_ids[seq] for seq in seqs}


def upsert_clusters(
    conn: Connection, run: RunRecord, clusters: Sequence[ClusterState], known: dict[int, int]
) -> None:
    """Insert new clusters, update changed ones, append their new members (``known``: seq -> object id)."""
    if not clusters:
        return
    wanted = {c.representative_seq for c in clusters} | {m for c in clusters for m in c.new_members}
    object_ids = _object_ids(conn, run.id, {int(s) for s in wanted}, known)

    def values(c: ClusterState) -> dict[str, Any]:
        return {
            "centroid": to_bytes(c.centroid),
            "size": int(c.size),
            "representative_object_id": object_ids[int(c.representative_seq)],
            "representative_crop": bytes(c.representative_crop),
            "representative_distance": float(c.representative_distance),
            "active": bool(c.active),
            "first_time": float(c.first_time),
            "last_time": float(c.last_time),
        }

    cluster_ids = _cluster_ids(conn, run.id, (c.seq for c in clusters))
    new = [c for c in clusters if c.seq not in cluster_ids]
    old = [c for c in clusters if c.seq in cluster_ids]
    if new:
        rows = [
            {"run_id": run.id, "video_id": run.video_id, "seq": int(c.seq), "label": c.label, **values(c)}
            for c in new
        ]
        bulk_insert(conn, CLUSTERS, rows)
        cluster_ids |= _cluster_ids(conn, run.id, (c.seq for c in new))
    if old:
        params = [{"id": cluster_ids[c.seq], **values(c)} for c in old]
        _update_clusters(conn, _CLUSTER_MUTABLE, params)
    members = [
        {"cluster_id": cluster_ids[c.seq], "object_id": object_ids[int(m)]}
        for c in clusters
        for m in c.new_members
    ]
    bulk_insert(conn, MEMBERS, members)


def apply_merges(conn: Connection, run: RunRecord, merges: Sequence[ClusterMerge]) -> None:
    """Update each surviving cluster, move the absorbed clusters' members to it, delete them."""
    if not merges:
        return
    seqs = {m.into.seq for m in merges} | {s for m in merges for s in m.absorbed}
    ids = _cluster_ids(conn, run.id, seqs)
    missing = sorted(seqs - ids.keys())
    if missing:
        raise StoreError(f"run {run.id}: cannot merge clusters that do not exist (seqs {missing[:10]})")
    # a merge keeps the surviving cluster's representative: only these columns change
    params = [
        {
            "id": ids[m.into.seq],
            "centroid": to_bytes(m.into.centroid),
            "size": int(m.into.size),
            "active": bool(m.into.active),
            "first_time": float(m.into.first_time),
            "last_time": float(m.into.last_time),
        }
        for m in merges
    ]
    _update_clusters(conn, _MERGED_COLUMNS, params)
    for merge in merges:
        absorbed = [ids[s] for s in merge.absorbed]
        conn.execute(
            update(MEMBERS).where(MEMBERS.c.cluster_id.in_(absorbed)).values(cluster_id=ids[merge.into.seq])
        )
        conn.execute(delete(CLUSTERS).where(CLUSTERS.c.id.in_(absorbed)))


def _update_clusters(conn: Connection, columns: Sequence[str], params: list[dict[str, Any]]) -> None:
    """One executemany UPDATE of ``columns`` of clusters by id; each of ``params`` holds id and columns."""
    # bind names differ from the column names, which SQLAlchemy reserves for SET
    stmt = (
        update(CLUSTERS)
        .where(CLUSTERS.c.id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in columns})
    )
    conn.execute(stmt, [{f"b_{k}": v for k, v in p.items()} for p in params])


def _object_ids(conn: Connection, run_id: int, seqs: set[int], known: dict[int, int]) -> dict[int, int]:
    """seq -> id for the run's objects ``seqs`` (``known`` saves lookups); unknown seqs are an error."""
    ids = {s: known[s] for s in seqs if s in known}
    for batch in batches(sorted(seqs - ids.keys())):
        stmt = select(OBJECTS.c.seq, OBJECTS.c.id).where(OBJECTS.c.run_id == run_id, OBJECTS.c.seq.in_(batch))
        ids.update({seq: oid for seq, oid in conn.execute(stmt)})
    missing = sorted(seqs - ids.keys())
    if missing:
        raise StoreError(
            f"run {run_id}: clusters refer to objects that were never stored (seqs {missing[:10]})"
        )
    return ids


def _cluster_ids(conn: Connection, run_id: int, seqs: Iterable[int]) -> dict[int, int]:
    ids: dict[int, int] = {}
    for batch in batches(sorted(set(seqs))):
        stmt = select(CLUSTERS.c.seq, CLUSTERS.c.id).where(
            CLUSTERS.c.run_id == run_id, CLUSTERS.c.seq.in_(batch)
        )
        ids.update({seq: cid for seq, cid in conn.execute(stmt)})
    return ids


# -- reading ---------------------------------------------------------------------------------------------


def _crop_column(crops: bool) -> Any:
    """The representative crop column, or an empty one where the caller needs no crops."""
    return CLUSTERS.c.representative_crop if crops else literal(b"").label("representative_crop")


def _visible(mode: str | None) -> list[ColumnElement[bool]]:
    """The conditions on ``RUNS`` that make rows visible to queries: done runs (of one mode)."""
    conditions = [RUNS.c.status == "done"]
    if mode is not None:
        conditions.append(RUNS.c.mode == mode)
    return conditions


def _objects_select(joins: Callable[[Any], Any]) -> Select:
    """Object rows with their video and one row per label; ``joins`` adds joins to the objects table."""
    source = joins(OBJECTS.join(RUNS, RUNS.c.id == OBJECTS.c.run_id))
    source = source.outerjoin(LABELS, LABELS.c.object_id == OBJECTS.c.id)
    return select(*_OBJECT_COLUMNS).select_from(source).order_by(OBJECTS.c.id, LABELS.c.label)


def _stored_objects(rows: Iterable[Row]) -> list[StoredObject]:
    """Objects from rows of (object columns, video_id, label, score), one row per label, sorted by id."""
    out = []
    for _, group in itertools.groupby(rows, key=lambda r: r.id):
        group = list(group)
        labels = {g.label: g.score for g in group if g.label is not None}
        out.append(from_row(StoredObject, group[0], box=box(group[0]), labels=labels))
    return out


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
