"""Merging the per-label clusters of a run's ranges when the run finishes.

Each range of a run (see :mod:`mxn.ingest.ranges`) clusters its objects on its
own, so that ranges can run in any order, in any process. The same car
crossing a seam, or parked through two ranges, then has one cluster in
each. When every range is done, :func:`plan_merges` folds each cluster of a
later range into the nearest cluster of the same label from the earlier
ranges when their centroids are within the clustering threshold: the
distance rule ingest uses to join an object to a cluster.

The plan depends only on the clusters, taken in range order and seq order,
never on which process made them or when, so a run ingested by N Dask
workers and one ingested by a single process end with the same clusters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from itertools import groupby

import faiss
import numpy as np

from mxn.storage.records import ClusterMerge, ClusterState, seq_range_index


def _fold(into: ClusterState, other: ClusterState) -> ClusterState:
    """``into`` grown by ``other``: size-weighted centroid, the union of their times.

    The representative stays ``into``'s (the earlier range's): a cluster's
    verdicts hang on one crop, and keeping the first one makes the choice
    independent of how many ranges follow.
    """
    size = into.size + other.size
    weighted = into.centroid.astype(np.float64) * into.size + other.centroid.astype(np.float64) * other.size
    centroid = weighted / size
    return replace(
        into,
        centroid=centroid.astype(np.float32),
        size=size,
        active=into.active or other.active,
        first_time=min(into.first_time, other.first_time),
        last_time=max(into.last_time, other.last_time),
        new_members=[],
    )


def _merge_label(clusters: list[ClusterState], threshold: float) -> list[ClusterMerge]:
    """The merges of one label's clusters (sorted by seq, so grouped by range)."""
    if not clusters:
        return []
    dim = clusters[0].centroid.shape[0]
    earlier = faiss.IndexIDMap2(faiss.IndexFlatL2(dim))
    kept: dict[int, ClusterState] = {}  # seq -> cluster of the earlier ranges, as merged so far
    absorbed: dict[int, list[int]] = {}
    for _, group in groupby(clusters, key=lambda c: seq_range_index(c.seq)):
        fresh = []
        for cluster in group:
            if kept:
                dist, ids = earlier.search(cluster.centroid[None, :].astype(np.float32), 1)
                target = int(ids[0, 0])
                if target >= 0 and float(dist[0, 0]) <= threshold:
                    kept[target] = _fold(kept[target], cluster)
                    absorbed.setdefault(target, []).append(cluster.seq)
                    earlier.remove_ids(np.array([target], np.int64))
                    earlier.add_with_ids(kept[target].centroid[None, :], np.array([target], np.int64))
                    continue
            fresh.append(cluster)
        for cluster in fresh:  # a range's own clusters never merge with each other
            kept[cluster.seq] = cluster
            vector = cluster.centroid[None, :].astype(np.float32)
            earlier.add_with_ids(vector, np.array([cluster.seq], np.int64))
    return [ClusterMerge(kept[seq], tuple(seqs)) for seq, seqs in sorted(absorbed.items())]


def plan_merges(clusters: Iterable[ClusterState], threshold: float) -> list[ClusterMerge]:
    """How a run's clusters from different ranges merge (see the module docstring).

    Args:
        clusters: every cluster of the run, of every range and label.
        threshold: the largest squared distance between two unit centroids
            that merges them (the run's ``cluster_threshold``).

    Returns:
        One :class:`ClusterMerge` per surviving cluster that absorbed others,
        ordered by label and seq; empty when nothing merges.
    """
    if not 0 <= threshold <= 4:
        raise ValueError(f"threshold must lie in [0, 4], got {threshold}")
    by_label: dict[str, list[ClusterState]] = {}
    for cluster in clusters:
        by_label.setdefault(cluster.label, []).append(cluster)
    merges = []
    for label in sorted(by_label):
        merges += _merge_label(sorted(by_label[label], key=lambda c: c.seq), threshold)
    return merges
