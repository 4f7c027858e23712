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

A label's index is flat (exact) up to :data:`FLAT_MAX_CENTROIDS` centroids
and IVF (inverted lists over a k-means partition, searched in a few lists)
above it, where one exact search stops costing well under a millisecond.
The manifest records which kind a file holds; a file of the other kind than
the threshold asks for is rebuilt, like a stale one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
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
#: 2: a file may hold an IVF index, and the manifest says which kind it holds.
FORMAT_VERSION = 2

#: The most centroids a flat index holds; a label with more gets an IVF index.
#: Measured by scripts/bench_scale.py (128-D, one thread, one query at a time, on
#: the project's 2-core VM shared with another job): a flat search costs 0.05 ms
#: at 4k centroids, 0.13-0.21 ms at 16k, 0.49-0.61 ms at 32k, 1.3-1.4 ms at 65k
#: and 2.7-3.6 ms at 131k, linear in n; IVF costs 0.06-0.12 ms at 32k and
#: 0.16-0.23 ms at 131k. Up to 2^15 flat search stays about half a millisecond,
#: is exact and needs no training (IVF's k-means takes 1.6-2.8 s at 2^15); it
#: passes a millisecond before 2^16. At 2^15 the 4 sqrt(n) lists also get the
#: 39 training points each that FAISS's k-means asks for.
FLAT_MAX_CENTROIDS = 32_768

#: The k-means seed of IVF training: the same centroids always give the same index.
IVF_SEED = 0

#: k-means iterations of IVF training (FAISS's IVF default, stated so it cannot drift).
IVF_TRAIN_ITERATIONS = 10


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

    ``index`` is a FAISS ``IndexIDMap2`` whose ids are cluster ids, around an
    ``IndexFlatL2`` (exact) or, above :data:`FLAT_MAX_CENTROIDS`, an
    ``IndexIVFFlat`` (approximate); ``None`` when the label has no clusters.
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

    @property
    def kind(self) -> str | None:
        """``"flat"`` or ``"ivf"`` (``None`` for an empty index)."""
        return None if self.index is None else _kind_of(self.index)

    @property
    def nprobe(self) -> int | None:
        """How many inverted lists an IVF search visits (``None`` unless IVF)."""
        ivf = _ivf(self.index)
        return None if ivf is None else int(ivf.nprobe)

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
        short = np.flatnonzero((ids < 0).any(axis=1))
        ivf = _ivf(self.index)
        if len(short) and ivf is not None:
            # the probed lists held fewer than k centroids: those rows search every list
            every = faiss.SearchParametersIVF(nprobe=int(ivf.nlist))
            distances[short], ids[short] = self.index.search(vectors[short], k, params=every)
        return distances, ids


def index_kind(count: int, flat_max_centroids: int | None = None) -> str:
    """The kind of index ``count`` centroids get: flat up to the threshold, IVF above.

    ``flat_max_centroids`` defaults to :data:`FLAT_MAX_CENTROIDS`, read at call time.
    """
    limit = FLAT_MAX_CENTROIDS if flat_max_centroids is None else flat_max_centroids
    return "flat" if count <= limit else "ivf"


def ivf_lists(count: int) -> int:
    """nlist for ``count`` centroids: about 4*sqrt(n), FAISS's rule of thumb, and never above n."""
    return max(1, min(count, round(4 * math.sqrt(count))))


def ivf_probes(nlist: int) -> int:
    """nprobe for ``nlist`` lists: about sqrt(nlist).

    A query then compares against the nlist list centroids and nprobe lists
    of n / nlist vectors each: 4 sqrt(n) + n^0.75 / 2 distances instead of n
    (4,100 instead of 100,000 at n = 10^5). scripts/bench_scale.py measures
    recall@1 against flat search on clustered 128-D centroids: 1.000 for
    queries near a centroid (what ingest and queries ask) at 1k-131k
    centroids, 0.92-1.00 for random directions (the worst case).
    """
    return max(1, min(nlist, math.ceil(math.sqrt(nlist))))


def _ivf(index: faiss.Index | None) -> faiss.IndexIVF | None:
    """The IVF index inside ``index``, or None for a flat (or no) index."""
    return None if index is None else faiss.try_extract_index_ivf(index)


def _kind_of(index: faiss.Index) -> str:
    return "flat" if _ivf(index) is None else "ivf"


def _new_index(matrix: np.ndarray, ids: np.ndarray, kind: str) -> faiss.Index:
    """An ``IndexIDMap2`` of ``kind`` over the rows of ``matrix`` with ids ``ids``.

    An IVF index is trained on the centroids themselves (no other sample of
    the label's vectors exists at query time), with a fixed seed.
    """
    n, dim = matrix.shape
    if kind == "flat":
        inner = faiss.IndexFlatL2(dim)
    else:
        nlist = ivf_lists(n)
        inner = faiss.index_factory(dim, f"IVF{nlist},Flat")
        inner.cp.seed = IVF_SEED
        inner.cp.niter = IVF_TRAIN_ITERATIONS
        inner.cp.min_points_per_centroid = 1  # small (test) indexes: no FAISS warning on stderr
        inner.train(matrix)
        inner.nprobe = ivf_probes(nlist)
    index = faiss.IndexIDMap2(inner)
    index.add_with_ids(matrix, ids)
    return index


def fingerprint(rows: list[tuple[int, int, int, int]], schema_version: int) -> str:
    """A short hash of the per-run cluster aggregates (see the module docstring)."""
    data = json.dumps([schema_version, FORMAT_VERSION, sorted(list(r) for r in rows)])
    return hashlib.sha256(data.encode()).hexdigest()


def build(
    mode: str | None,
    label: str,
    fp: str,
    ids: np.ndarray,
    centroids: list[bytes],
    *,
    flat_max_centroids: int | None = None,
) -> ClusterVectors:
    """A fresh index over the given cluster ids and float32 centroid bytes.

    It is flat up to ``flat_max_centroids`` centroids (default
    :data:`FLAT_MAX_CENTROIDS`) and IVF above.
    """
    if not centroids:
        return ClusterVectors(mode, label, fp, None)
    sizes = {len(c) for c in centroids}
    if len(sizes) != 1:
        raise ValueError(f"clusters of label {label!r} have centroids of different sizes (different exits?)")
    matrix = np.frombuffer(b"".join(centroids), "<f4").astype(np.float32).reshape(len(centroids), -1)
    kind = index_kind(len(matrix), flat_max_centroids)
    return ClusterVectors(mode, label, fp, _new_index(matrix, np.asarray(ids, np.int64), kind))


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
        """The saved index when its manifest matches ``fp``, its kind the threshold's and its file is intact.

        Otherwise None, and the caller rebuilds.
        """
        if self.directory is None:
            return None
        index_path, manifest_path = self._paths(mode, label)
        try:
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("fingerprint") != fp or manifest.get("label") != label:
                return None
            if manifest["ntotal"] == 0:
                return ClusterVectors(mode, label, fp, None)
            if manifest.get("kind") != index_kind(manifest["ntotal"]):
                log.info("index %s is %s, the threshold asks for another kind: rebuilding", index_path,
                         manifest.get("kind"))  # fmt: skip
                return None
            data = index_path.read_bytes()
            if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
                log.warning("index file %s does not match its manifest: rebuilding", index_path)
                return None
            index = faiss.deserialize_index(np.frombuffer(data, np.uint8))
            if int(index.ntotal) != manifest["ntotal"] or _kind_of(index) != manifest["kind"]:
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
                "kind": vectors.kind,
                "nprobe": vectors.nprobe,
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
