"""FAISS indexes over cluster centroids, derived from SQL and cached on disk.

SQL is the system of record; an index file is only a cache. Each saved
index has a JSON manifest holding the fingerprint of the SQL rows it was
built from (and a hash of the index file). A cache whose fingerprint no
longer matches SQL, or whose file is missing, unreadable or corrupt, is
rebuilt from SQL and saved atomically, so a crash or a second process can
never leave a half-written index that looks valid.

The fingerprint lists, for every done run holding clusters of the label
in the mode, (run id, cluster count, max cluster id, sum of sizes). Done
runs never change and ids are never reused, so equal fingerprints mean
equal cluster sets.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

log = logging.getLogger(__name__)

#: Bump when the file layout changes: older files are then simply rebuilt.
FORMAT_VERSION = 1


@contextmanager
def single_thread_faiss() -> Iterator[None]:
    """FAISS on one thread for the duration, for searches of one vector against a few hundred.

    Ingest's clustering and the face databases make such searches. Each
    takes microseconds; waking an OpenMP team for it costs more than the
    search, and much more when other processes hold the cores (measured by
    scripts/bench_ingest.py under contention).
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


@dataclass(frozen=True)
class ClusterVectors:
    """The centroids of the done clusters of one label in one mode, searchable by L2 distance.

    ``index`` is a FAISS ``IndexIDMap2(IndexFlatL2)`` whose ids are cluster ids
    (``None`` when the label has no clusters).
    """

    mode: str | None
    label: str
    fingerprint: str
    index: faiss.Index | None

    def __len__(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    @property
    def dim(self) -> int | None:
        """The centroids' dimension (``None`` for an empty index)."""
        return None if self.index is None else int(self.index.d)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest clusters of each row: (squared L2 distances, cluster ids), both (n, k').

        ``k'`` is ``min(k, len(self))``, so every returned id is a real cluster.
        """
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), np.float32)
        k = max(0, min(int(k), len(self)))
        if self.index is None or k == 0:
            return np.zeros((len(vectors), 0), np.float32), np.zeros((len(vectors), 0), np.int64)
        if vectors.shape[1] != self.index.d:
            raise ValueError(f"query vectors have {vectors.shape[1]} dimensions, the index {self.index.d}")
        distances, ids = self.index.search(vectors, k)
        return distances, ids


def fingerprint(rows: list[tuple[int, int, int, int]], schema_version: int) -> str:
    """A short hash of the per-run cluster aggregates (see the module docstring)."""
    data = json.dumps([schema_version, FORMAT_VERSION, sorted(list(r) for r in rows)])
    return hashlib.sha256(data.encode()).hexdigest()


def build(mode: str | None, label: str, fp: str, ids: np.ndarray, centroids: list[bytes]) -> ClusterVectors:
    """A fresh index over the given cluster ids and float32 centroid bytes."""
    if not centroids:
        return ClusterVectors(mode, label, fp, None)
    sizes = {len(c) for c in centroids}
    if len(sizes) != 1:
        raise ValueError(f"clusters of label {label!r} have centroids of different sizes (different exits?)")
    matrix = np.frombuffer(b"".join(centroids), "<f4").astype(np.float32).reshape(len(centroids), -1)
    index = faiss.IndexIDMap2(faiss.IndexFlatL2(matrix.shape[1]))
    index.add_with_ids(matrix, np.asarray(ids, np.int64))
    return ClusterVectors(mode, label, fp, index)


def _file_stem(mode: str | None, label: str) -> str:
    """A file-system-safe name unique to (mode, label), still readable by a person."""
    key = f"{mode or '*'}\0{label}"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{mode or 'any'}--{label}")[:60]
    return f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


class IndexFiles:
    """Loads and saves :class:`ClusterVectors` in one directory (created on first save)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory  # None: memory only (an in-memory database)

    def _paths(self, mode: str | None, label: str) -> tuple[Path, Path]:
        assert self.directory is not None
        stem = _file_stem(mode, label)
        return self.directory / f"{stem}.faiss", self.directory / f"{stem}.json"

    def load(self, mode: str | None, label: str, fp: str) -> ClusterVectors | None:
        """The saved index when its manifest matches ``fp`` and its file is intact, else None."""
        if self.directory is None:
            return None
        index_path, manifest_path = self._paths(mode, label)
        try:
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("fingerprint") != fp or manifest.get("label") != label:
                return None
            if manifest["ntotal"] == 0:
                return ClusterVectors(mode, label, fp, None)
            data = index_path.read_bytes()
            if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
                log.warning("index file %s does not match its manifest: rebuilding", index_path)
                return None
            index = faiss.deserialize_index(np.frombuffer(data, np.uint8))
            if int(index.ntotal) != manifest["ntotal"]:
                return None
            return ClusterVectors(mode, label, fp, index)
        except FileNotFoundError:
            return None
        except Exception as err:  # a corrupt cache is rebuilt, never fatal
            log.warning("unreadable index %s (%s): rebuilding", index_path, err)
            return None

    def save(self, vectors: ClusterVectors) -> None:
        """Write index then manifest, each atomically; a failure only costs a rebuild later."""
        if self.directory is None:
            return
        index_path, manifest_path = self._paths(vectors.mode, vectors.label)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            data = b"" if vectors.index is None else faiss.serialize_index(vectors.index).tobytes()
            manifest = {
                "format": FORMAT_VERSION,
                "mode": vectors.mode,
                "label": vectors.label,
                "fingerprint": vectors.fingerprint,
                "ntotal": len(vectors),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            # the index first: a manifest never describes a file that is not yet there
            _write_atomic(index_path, data)
            _write_atomic(manifest_path, json.dumps(manifest, indent=1).encode())
        except OSError as err:
            log.warning("cannot save index %s (%s): it lives in memory only", index_path, err)


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so readers see the old or the new file, never a partial one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; other users of the database may read the cache
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
