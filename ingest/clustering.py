"""Per-label incremental clustering of indexed objects (Focus, docs/ARCHITECTURE.md section 4.5).

Every label c keeps at most ``max_active`` open clusters. An object indexed
under c joins the nearest open cluster of c when its feature vector lies
within ``threshold`` (squared L2 distance between L2-normalised vectors,
so 0 = same direction, 4 = opposite), or opens a new cluster. When a label
already has ``max_active`` open clusters, the one updated longest ago is
closed first (traffic moves on; an old cluster rarely matches again).

Queries later run the expensive CNN on one representative per cluster
instead of on every object, so a cluster must hold one kind of thing: the
threshold trades fewer clusters (cheaper queries) against purity.

The nearest-centroid search uses a FAISS flat index per label. All state
lives in :class:`mxn.storage.records.ClusterState` objects, which the store
saves and loads bit-exactly, so a resumed ingest continues exactly where
the killed one stopped.
"""

from __future__ import annotations

from collections.abc import Iterable

import faiss
import numpy as np

from mxn.storage.crop_codec import encode_crop
from mxn.storage.records import ClusterState


def normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    features = np.asarray(features, np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


class _LabelClusters:
    """The open clusters of one label and a FAISS index over their centroids."""

    def __init__(self, dim: int) -> None:
        self.index = faiss.IndexIDMap2(faiss.IndexFlatL2(dim))
        self.open: dict[int, ClusterState] = {}

    def put(self, cluster: ClusterState) -> None:
        if cluster.seq in self.open:
            self.index.remove_ids(np.array([cluster.seq], np.int64))
        self.open[cluster.seq] = cluster
        self.index.add_with_ids(cluster.centroid[None, :], np.array([cluster.seq], np.int64))

    def close(self, cluster: ClusterState) -> None:
        self.index.remove_ids(np.array([cluster.seq], np.int64))
        del self.open[cluster.seq]
        cluster.active = False

    def nearest(self, vector: np.ndarray) -> tuple[float, int]:
        if not self.open:
            return float("inf"), -1
        dist, ids = self.index.search(vector[None, :], 1)
        return float(dist[0, 0]), int(ids[0, 0])

    def stalest(self) -> ClusterState:
        return min(self.open.values(), key=lambda c: (c.last_time, c.seq))


class IncrementalClusterer:
    """Per-label online clustering with at most ``max_active`` open clusters per label.

    Args:
        threshold: largest squared L2 distance (unit vectors) at which an
            object joins a cluster.
        max_active: open clusters per label (Focus used 100).
        clusters: open clusters to continue from (a resumed run).
        next_seq: the first free cluster number (a resumed run).
    """

    def __init__(
        self,
        threshold: float = 0.1,
        max_active: int = 100,
        clusters: Iterable[ClusterState] = (),
        next_seq: int = 0,
    ) -> None:
        if not 0 <= threshold <= 4:
            raise ValueError(
                f"threshold (a squared distance of unit vectors) must lie in [0, 4]; got {threshold}"
            )
        if max_active < 1:
            raise ValueError(f"max_active must be >= 1, got {max_active}")
        self.threshold, self.max_active = threshold, max_active
        self.next_seq = next_seq
        self._labels: dict[str, _LabelClusters] = {}
        self._dirty: dict[int, ClusterState] = {}
        self._crops: dict[int, np.ndarray] = {}
        for cluster in clusters:
            if cluster.active:
                self._label(cluster.label, cluster.centroid.shape[0]).put(cluster)
            self.next_seq = max(self.next_seq, cluster.seq + 1)

    def _label(self, label: str, dim: int) -> _LabelClusters:
        if label not in self._labels:
            self._labels[label] = _LabelClusters(dim)
        return self._labels[label]

    def add(
        self, seq: int, time: float, labels: Iterable[str], feature: np.ndarray, crop: np.ndarray
    ) -> None:
        """Put object ``seq`` (unit ``feature``, its ``crop``) into one cluster of each of its ``labels``."""
        feature = np.ascontiguousarray(feature, np.float32)
        for label in labels:
            group = self._label(label, feature.shape[0])
            dist, nearest = group.nearest(feature)
            if nearest >= 0 and dist <= self.threshold:
                self._join(group, group.open[nearest], seq, time, feature, crop)
            else:
                self._open(group, label, seq, time, feature, crop)

    def _join(
        self,
        group: _LabelClusters,
        c: ClusterState,
        seq: int,
        time: float,
        feature: np.ndarray,
        crop: np.ndarray,
    ) -> None:
        c.size += 1
        c.centroid = (c.centroid + (feature - c.centroid) / np.float32(c.size)).astype(np.float32)
        c.last_time = max(c.last_time, time)
        c.new_members.append(seq)
        distance = float(np.sum((feature - c.centroid) ** 2))
        if distance < c.representative_distance:
            c.representative_seq, c.representative_distance = seq, distance
            self._crops[c.seq] = crop
        group.put(c)
        self._dirty[c.seq] = c

    def _open(
        self, group: _LabelClusters, label: str, seq: int, time: float, feature: np.ndarray, crop: np.ndarray
    ) -> None:
        if len(group.open) >= self.max_active:
            stale = group.stalest()
            group.close(stale)
            self._dirty[stale.seq] = stale
        c = ClusterState(
            seq=self.next_seq,
            label=label,
            centroid=feature.copy(),
            size=1,
            representative_seq=seq,
            representative_crop=b"",
            representative_distance=0.0,
            first_time=time,
            last_time=time,
            new_members=[seq],
        )
        self.next_seq += 1
        self._crops[c.seq] = crop
        group.put(c)
        self._dirty[c.seq] = c

    def take_changes(self) -> list[ClusterState]:
        """Clusters changed since the last call, by seq (representatives encoded: mxn.storage.crop_codec)."""
        changed = [self._dirty[k] for k in sorted(self._dirty)]
        for c in changed:
            if c.seq in self._crops:
                c.representative_crop = encode_crop(self._crops.pop(c.seq))
        self._dirty = {}
        return changed

    def open_clusters(self) -> int:
        return sum(len(g.open) for g in self._labels.values())
