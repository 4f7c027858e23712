"""The index at scale: candidate lookup, insertion and nearest-centroid search as the index grows.

Issue 7 ("Scale out"), the query side: an index of millions of objects and
10^5 clusters must answer a label query's candidate lookup in milliseconds.
No CNN runs: the index is synthetic, but it is written through the real
store API exactly as ingest writes it (``Store.add_video``, ``start_run``,
``commit_chunk`` with :class:`ObjectRecord` / :class:`ClusterState` chunk by
chunk, ``finish_run``), into a temporary SQLite file or, with ``--db``, a
PostgreSQL database. Side by side in one run:

1. **The index** grows in steps (full: 10^4, 10^5, 10^6 objects; quick:
   10^4, 3x10^4, 10^5). Each step adds ``videos`` new videos (one run each)
   holding the objects it adds, at 100 objects per second of video (a busy
   camera: bench_ingest's downtown clip finds ~190), so each step's videos
   are longer than the last step's. Every object has one of the world's seven
   classes (car 50%, see ``MIX``) and half of them also a confusable second
   label (``PARTNER``); its 128-D unit feature lies a little off its cluster's
   centroid (squared distance ~0.05, inside ingest's default threshold 0.1).
   A label's objects fill its clusters in time order, with geometric sizes
   of mean 15 (object, label) pairs, so there are ~objects/10 clusters
   (10^5 at 10^6 objects). Each cluster has a 64x64 PNG representative crop
   (7.8 KB, like the 7.6 KB of bench_query's downtown index). Commits are
   chunks of 5,000 objects (a 900-frame chunk of downtown holds ~5,600); a
   cluster that spans chunks is updated in the next one, as ingest does.
2. **Candidate lookup** after each step, as a query makes it:
   ``Store.clusters(label, video, start, end, crops=False)`` for ``car`` in the
   step's first (longest) video over a 20 s window in its middle (the
   same-sized answer at every step), and over the whole video (an answer that
   grows with the video); medians of repeats after a warm-up.
   ``Store.clusters(label, crops=False)`` over every video is timed too
   (``--video all``). Beside each: the same lookup with the representative
   crops (``crops=True``) and the crop fetch for its candidates
   (``Store.cluster_crops``), which a query pays only for the clusters a CNN
   must see.
3. **Insertion**: microseconds per object of the ``commit_chunk`` calls that
   grew the index to the step's size (median of the step's last five; the
   very last one is reported beside it).
4. **Nearest-centroid search**: ``Store.cluster_index(label)`` is built from SQL
   and saved, asked again (a fingerprint check) and loaded by a second store;
   object-like queries, one at a time on one thread (how ingest asks). At the
   largest size the flat and the IVF index over the same centroids run side by
   side: build seconds, ms per query and recall@1 of IVF against flat (for
   object-like queries and for random directions, the worst case). A sweep
   over centroid counts (synthetic, no SQL) shows where flat search stops
   being sub-millisecond: the reason for ``mxn.storage.vectors.FLAT_MAX_CENTROIDS``.
5. **The lookup indexes** (:data:`LOOKUP_INDEXES`, in the schema since
   version 4): at the largest size the lookups and a ``cluster_index`` call
   are timed again with them and, back to back, without them: they are
   dropped in this run's own database and re-created after.
6. **Growth**: the slope of log(cost) against log(objects) over the steps:
   ``growth_exponent`` for the windowed lookup, and the same for the
   whole-video lookup and for insertion. 0 means the cost does not grow with
   the index, 1 that it grows like it.

It prints a table and, with ``--json OUT``, writes every number. In a quick
run the ``*_at_1e6`` keys hold the largest size measured, which
``largest_objects`` names. The machine may be shared: the 1-minute load
average is recorded at each step. It always exits 0: it is a measurement,
and it prints whether the target was met.

Usage::

    python scripts/bench_scale.py --quick --json /tmp/bench_scale_quick.json   # ~11 s
    python scripts/bench_scale.py --json /tmp/bench_scale_full.json             # ~2.5 min, 1.6 GB of SQLite
    python scripts/bench_scale.py --quick --db postgresql://USER@HOST/EMPTY_DB
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from harness import choose_preset, fmt, machine, median, median_seconds, new_parser, print_table, write_result
from sqlalchemy.engine import make_url
from tqdm.auto import tqdm

from mxn.datasets.world.sprites import CLASSES
from mxn.ingest.clustering import normalise
from mxn.storage import vectors as vec
from mxn.storage.crop_codec import encode_crop
from mxn.storage.records import ClusterState, ObjectRecord, VideoInfo
from mxn.storage.schema import Cluster
from mxn.storage.store import Store, mask_url

#: Share of objects whose first label is each class: cars dominate traffic.
MIX = {
    "car": 0.50,
    "van": 0.14,
    "truck": 0.08,
    "bus": 0.05,
    "person": 0.12,
    "cyclist": 0.06,
    "motorcyclist": 0.05,
}

#: The confusable second label an object may also be indexed under (top-2 of a cheap exit).
PARTNER = {"car": "van", "van": "car", "truck": "bus", "bus": "truck", "person": "cyclist",
           "cyclist": "motorcyclist", "motorcyclist": "cyclist"}  # fmt: skip
assert set(MIX) == set(PARTNER) == set(CLASSES) and math.isclose(sum(MIX.values()), 1.0)

#: Directions per label that its clusters' centroids scatter around (kinds of look).
LOOKS = 64

#: Noise scales (norm of the Gaussian offset before re-normalising): a centroid
#: off its look, and an object off its centroid (squared distance ~0.05).
CENTROID_SPREAD, OBJECT_SPREAD = 0.5, 0.22

FPS = 30.0
FRAME = (640, 360)
CLUSTERS = Cluster.__table__

#: "In milliseconds": the windowed candidate lookup at 10^6 objects must take at most this.
TARGET_LOOKUP_MS = 10.0


@dataclass(frozen=True)
class Preset:
    """How big the index grows and how each figure is measured."""

    quick: bool
    steps: tuple[int, ...]  # objects in the index after each step
    sweep: tuple[int, ...]  # centroid counts of the flat-vs-IVF sweep
    repeats: int = 15  # lookups per median
    queries: int = 500  # nearest-centroid queries per timing
    videos: int = 4  # new videos per step
    objects_per_s: float = 100.0
    chunk_objects: int = 5_000
    cluster_pairs: float = 15.0  # mean (object, label) pairs per cluster
    second_label: float = 0.5  # share of objects with a second label
    window_s: float = 20.0
    dim: int = 128
    crop_px: int = 64
    label: str = "car"
    seed: int = 0


QUICK = Preset(True, steps=(10_000, 30_000, 100_000), sweep=(1_024, 4_096, 16_384), repeats=9, queries=300)
FULL = Preset(False, steps=(10_000, 100_000, 1_000_000), sweep=(4_096, 16_384, 32_768, 65_536, 131_072))


# -- the synthetic index ---------------------------------------------------------------------------------


def near(rng: np.random.Generator, base: np.ndarray, spread: float) -> np.ndarray:
    """Unit vectors a random offset of norm ~``spread`` away from the rows of ``base``."""
    noise = rng.standard_normal(base.shape).astype(np.float32) * (spread / math.sqrt(base.shape[-1]))
    return normalise(base + noise)


def representative_crops(rng: np.random.Generator, count: int, px: int) -> list[bytes]:
    """Crops shaped like ingest's, stored as ingest stores them (:mod:`mxn.storage.crop_codec`).

    A coloured vehicle box with a window on a road-grey gradient, with sensor noise: the noise is what
    made real crops cost ~7.6 KB as PNG (these: 7.8 KB); without it they took 0.9 KB.
    """
    crops = []
    shade = np.repeat((80 + 50 * np.mgrid[0:px, 0:px][0] / px)[..., None], 3, axis=2)
    for _ in range(count):
        image = shade.copy()
        x1, y1 = rng.integers(3, px // 4, 2)
        x2, y2 = px - rng.integers(3, px // 4, 2)
        image[y1:y2, x1:x2] = rng.integers(30, 230, 3)
        image[y1 + 2 : y1 + (y2 - y1) // 3, x1 + 4 : x2 - 4] = (60, 75, 90)
        image += rng.normal(0, 4, image.shape)
        crops.append(encode_crop(np.clip(image, 0, 255).astype(np.uint8)))
    return crops


@dataclass
class VideoPlan:
    """What ingest would have found in one video, as arrays.

    ``pair_*`` describe the (object, label) pairs sorted by object seq: each
    pair is one label an object is indexed under and one cluster membership.
    """

    times: np.ndarray  # (objects,) seconds, increasing
    object_cluster: np.ndarray  # (objects,) the cluster of each object's first label (its feature's)
    pair_seq: np.ndarray
    pair_label: np.ndarray  # index into CLASSES
    pair_score: np.ndarray
    pair_cluster: np.ndarray  # cluster seq
    pair_rank: np.ndarray  # position in its cluster, 0 = first member
    cluster_label: np.ndarray  # (clusters,)
    cluster_first: np.ndarray  # the first member's object seq (the representative)
    cluster_last: np.ndarray  # the last member's object seq
    centroids: np.ndarray  # (clusters, dim)

    @property
    def objects(self) -> int:
        return len(self.times)

    @property
    def duration_s(self) -> float:
        return float(self.times[-1]) + 1.0 / FPS if self.objects else 0.0


def _pairs(rng: np.random.Generator, objects: int, second_share: float) -> tuple[np.ndarray, ...]:
    """(seq, label, score, is_first_label) of every (object, label) pair, sorted by label then seq."""
    first = rng.choice(len(CLASSES), objects, p=[MIX[c] for c in CLASSES])
    partner = np.array([CLASSES.index(PARTNER[c]) for c in CLASSES])
    second = rng.random(objects) < second_share
    seqs = np.arange(objects)
    seq = np.concatenate([seqs, seqs[second]])
    label = np.concatenate([first, partner[first[second]]])
    score = np.concatenate([rng.uniform(0.5, 1.0, objects), rng.uniform(0.1, 0.5, int(second.sum()))])
    is_first = np.arange(len(seq)) < objects
    order = np.lexsort((seq, label))
    return seq[order], label[order], score[order], is_first[order]


def _geometric_clusters(rng: np.random.Generator, pairs: int, mean: float) -> np.ndarray:
    """Cluster sizes (geometric, mean ``mean``) that add up to exactly ``pairs``."""
    sizes = rng.geometric(1.0 / mean, size=max(1, int(2 * pairs / mean) + 16))
    while sizes.sum() < pairs:
        sizes = np.concatenate([sizes, rng.geometric(1.0 / mean, size=len(sizes))])
    count = int(np.searchsorted(np.cumsum(sizes), pairs)) + 1
    sizes = sizes[:count].copy()
    sizes[-1] -= sizes.sum() - pairs
    return sizes


def _fill_clusters(
    rng: np.random.Generator, label: np.ndarray, mean: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each pair's cluster and rank in it, and each cluster's label; a label's pairs fill its clusters.

    ``label`` must be sorted (then each label's pairs are contiguous and in seq order).
    """
    cluster = np.empty(len(label), np.int64)
    rank = np.empty(len(label), np.int64)
    labels, count = [], 0
    for li in np.unique(label):
        where = np.flatnonzero(label == li)
        sizes = _geometric_clusters(rng, len(where), mean)
        cluster[where] = count + np.repeat(np.arange(len(sizes)), sizes)
        rank[where] = np.arange(len(where)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        labels.append(np.full(len(sizes), li))
        count += len(sizes)
    return cluster, rank, np.concatenate(labels)


def _by_first_member(
    seq: np.ndarray, cluster: np.ndarray, rank: np.ndarray, cluster_label: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Clusters renumbered in the order their first members appear, as ingest numbers them.

    Returns each pair's new cluster, and per new cluster its label, first and last member seq.
    """
    first = np.empty(len(cluster_label), np.int64)
    first[cluster[rank == 0]] = seq[rank == 0]
    renumber = np.empty(len(first), np.int64)
    renumber[np.argsort(first, kind="stable")] = np.arange(len(first))
    cluster = renumber[cluster]
    labels = np.empty_like(cluster_label)
    labels[renumber] = cluster_label
    last = np.zeros(len(first), np.int64)
    np.maximum.at(last, cluster, seq)
    return cluster, labels, np.sort(first), last


def plan_video(rng: np.random.Generator, objects: int, preset: Preset, looks: np.ndarray) -> VideoPlan:
    """One video's objects, labels and clusters (centroids around the label's looks)."""
    seq, label, score, is_first = _pairs(rng, objects, preset.second_label)
    cluster, rank, cluster_label = _fill_clusters(rng, label, preset.cluster_pairs)
    cluster, cluster_label, first, last = _by_first_member(seq, cluster, rank, cluster_label)
    object_cluster = np.empty(objects, np.int64)
    object_cluster[seq[is_first]] = cluster[is_first]
    order = np.argsort(seq, kind="stable")
    look = looks[cluster_label, rng.integers(0, LOOKS, len(cluster_label))]
    return VideoPlan(
        times=(np.arange(objects) + rng.random(objects)) / preset.objects_per_s,
        object_cluster=object_cluster,
        pair_seq=seq[order],
        pair_label=label[order],
        pair_score=score[order],
        pair_cluster=cluster[order],
        pair_rank=rank[order],
        cluster_label=cluster_label,
        cluster_first=first,
        cluster_last=last,
        centroids=near(rng, look, CENTROID_SPREAD),
    )


def chunk_records(
    plan: VideoPlan, start: int, end: int, rng: np.random.Generator, crops: list[bytes]
) -> tuple[list[ObjectRecord], list[ClusterState]]:
    """The objects ``start..end-1`` and every cluster they join, as ingest hands a chunk to the store."""
    lo, hi = np.searchsorted(plan.pair_seq, [start, end])
    seqs, labels = plan.pair_seq[lo:hi], plan.pair_label[lo:hi]
    labels_of: list[dict[str, float]] = [{} for _ in range(end - start)]
    for s, li, score in zip(seqs.tolist(), labels.tolist(), plan.pair_score[lo:hi].tolist(), strict=True):
        labels_of[s - start][CLASSES[li]] = score
    features = near(rng, plan.centroids[plan.object_cluster[start:end]], OBJECT_SPREAD)
    corner = rng.integers(0, (FRAME[0] - 80, FRAME[1] - 60), (end - start, 2))
    size = rng.integers((12, 10), (80, 60), (end - start, 2))
    boxes = np.concatenate([corner, corner + size], axis=1).tolist()
    objects = [
        ObjectRecord(seq, int(plan.times[seq] * FPS), float(plan.times[seq]), tuple(boxes[k]), labels_of[k],
                     features[k])
        for k, seq in enumerate(range(start, end))
    ]  # fmt: skip
    order = np.argsort(plan.pair_cluster[lo:hi], kind="stable")
    ids, at = np.unique(plan.pair_cluster[lo:hi][order], return_index=True)
    members = np.split(seqs[order], at[1:])
    tops = np.maximum.reduceat(plan.pair_rank[lo:hi][order], at) if len(at) else []
    clusters = [
        ClusterState(
            seq=int(c),
            label=CLASSES[plan.cluster_label[c]],
            centroid=plan.centroids[c],
            size=int(top) + 1,
            representative_seq=int(plan.cluster_first[c]),
            representative_crop=crops[int(c) % len(crops)],
            representative_distance=0.05,
            active=bool(plan.cluster_last[c] >= end),
            first_time=float(plan.times[plan.cluster_first[c]]),
            last_time=float(plan.times[group[-1]]),
            new_members=group.tolist(),
        )
        for c, group, top in zip(ids, members, tops, strict=True)
    ]
    return objects, clusters


# -- building it through the store -----------------------------------------------------------------------


@dataclass
class Commit:
    """One timed ``commit_chunk``."""

    objects: int
    seconds: float


@dataclass
class Built:
    """What the index holds so far, as the benchmark needs to query it."""

    objects: int = 0
    clusters: int = 0
    videos: list[tuple[int, float]] = field(default_factory=list)  # (video id, duration s)
    label_centroids: list[np.ndarray] = field(default_factory=list)  # the query label's, per video
    commits: list[Commit] = field(default_factory=list)  # of the latest step
    finish_s: list[float] = field(default_factory=list)  # finish_run seconds of the latest step


def finish(store: Store, run_id: int, stats: dict[str, Any]) -> None:
    """Finish a one-range run: its range (the default, the whole video), then the run."""
    store.finish_range(run_id, 0, stats)
    store.finish_run(run_id, stats)


class IndexBuilder:
    """Grows the synthetic index through the store, step by step, timing every commit."""

    def __init__(self, store: Store, preset: Preset, bar: tqdm) -> None:
        self.store, self.preset, self.bar = store, preset, bar
        self.rng = np.random.default_rng(preset.seed)
        self.looks = normalise(self.rng.standard_normal((len(CLASSES) * LOOKS, preset.dim))).reshape(
            len(CLASSES), LOOKS, preset.dim
        )
        self.crops = representative_crops(self.rng, 16, preset.crop_px)
        self.token = uuid.uuid4().hex  # fresh content hashes: a shared database never already holds them
        self.built = Built()

    def grow_to(self, step: int, objects: int) -> tuple[int, float]:
        """Add ``preset.videos`` videos holding the objects up to ``objects``: the first's (id, seconds).

        The first of a step's videos is one of its longest (they differ by one object at most).
        """
        self.built.commits, self.built.finish_s = [], []
        new = objects - self.built.objects
        shares = [
            new // self.preset.videos + (v < new % self.preset.videos) for v in range(self.preset.videos)
        ]
        videos = [self._ingest(f"scale-{step}-{v}", count) for v, count in enumerate(shares)]
        return videos[0]

    def _ingest(self, name: str, objects: int) -> tuple[int, float]:
        plan = plan_video(self.rng, objects, self.preset, self.looks)
        content_hash = hashlib.sha256(f"{self.token}/{name}".encode()).hexdigest()
        frames = int(plan.duration_s * FPS) + 1
        info = VideoInfo(
            f"{name}.mp4", f"/synthetic/{name}.mp4", content_hash, FPS, *FRAME, frames, plan.duration_s
        )
        video = self.store.add_video(info)
        run = self.store.start_run(video.id, "mxn", {"synthetic": "bench_scale"}, "0" * 64)
        for start in range(0, objects, self.preset.chunk_objects):
            end = min(start + self.preset.chunk_objects, objects)
            records, clusters = chunk_records(plan, start, end, self.rng, self.crops)
            began = time.perf_counter()
            self.store.commit_chunk(
                run.id, int(plan.times[end - 1] * FPS) + 1, records, clusters, {"objects": end}
            )
            self.built.commits.append(Commit(end - start, time.perf_counter() - began))
            self.bar.update(end - start)
        began = time.perf_counter()
        finish(self.store, run.id, {"objects": objects, "clusters": len(plan.cluster_label)})
        self.built.finish_s.append(time.perf_counter() - began)
        label = CLASSES.index(self.preset.label)
        self.built.label_centroids.append(plan.centroids[plan.cluster_label == label])
        self.built.objects += objects
        self.built.clusters += len(plan.cluster_label)
        self.built.videos.append((video.id, plan.duration_s))
        return video.id, plan.duration_s


# -- measuring -------------------------------------------------------------------------------------------


def median_ms(call: Callable[[], object], repeats: int) -> float:
    """Median wall milliseconds of ``call`` over ``repeats`` runs, after one untimed warm-up."""
    return 1e3 * median_seconds(call, repeats)


def measure_lookups(store: Store, video: tuple[int, float], preset: Preset) -> dict[str, Any]:
    """Candidate lookups of the query label: a window of one video, the whole video, every video.

    Each as a query makes it (no crops), with crops, and the crop fetch for its candidates.
    """
    video_id, duration = video
    middle = duration / 2
    start, end = max(0.0, middle - preset.window_s / 2), min(duration, middle + preset.window_s / 2)
    scopes = {"window": (video_id, start, end), "video": (video_id,), "all_videos": ()}
    out: dict[str, Any] = {"video_id": video_id, "video_s": duration, "window": [start, end]}
    for name, scope in scopes.items():
        repeats = preset.repeats if name != "all_videos" else 3  # a big answer: its cost is reading it
        ids = [c.id for c in store.clusters(preset.label, *scope, crops=False)]
        out[f"{name}_ms"] = median_ms(partial(store.clusters, preset.label, *scope, crops=False), repeats)
        out[f"{name}_crops_ms"] = median_ms(partial(store.clusters, preset.label, *scope), repeats)
        out[f"{name}_crop_fetch_ms"] = median_ms(partial(store.cluster_crops, ids), repeats)
        out[f"{name}_candidates"] = len(ids)
    return out


def insertion(commits: list[Commit], last: int = 5) -> dict[str, float]:
    """Microseconds per object of the commits that grew the index to its size (the step's last ones)."""
    tail = commits[-last:]
    return {
        "insert_per_object_us": median([1e6 * c.seconds / c.objects for c in tail]),
        "insert_last_batch_us": 1e6 * commits[-1].seconds / commits[-1].objects,
        "insert_step_mean_us": 1e6 * sum(c.seconds for c in commits) / sum(c.objects for c in commits),
        "commits": len(commits),
    }


def search_ms(index: vec.ClusterVectors, queries: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean ms of one query at a time on one thread (as ingest asks), and each query's nearest id."""
    with vec.single_thread_faiss():
        index.search(queries[:5], 1)
        began = time.perf_counter()
        nearest = [int(index.search(q[None, :], 1)[1][0, 0]) for q in queries]
        seconds = time.perf_counter() - began
    return 1e3 * seconds / len(queries), np.array(nearest)


def object_like(rng: np.random.Generator, centroids: np.ndarray, count: int) -> np.ndarray:
    """Queries as ingest makes them: objects' features, a little off a random cluster's centroid."""
    return near(rng, centroids[rng.integers(0, len(centroids), count)], OBJECT_SPREAD)


def measure_cluster_index(
    store: Store, url: str, index_dir: Path, built: Built, preset: Preset, rng: np.random.Generator
) -> dict[str, Any]:
    """``Store.cluster_index``: built from SQL and saved, asked again, loaded by another store, searched."""
    began = time.perf_counter()
    index = store.cluster_index(preset.label)
    build_s = time.perf_counter() - began
    cached_ms = median_ms(lambda: store.cluster_index(preset.label), preset.repeats)
    with Store(url, index_dir=index_dir) as other:
        began = time.perf_counter()
        loaded = other.cluster_index(preset.label)
        load_s = time.perf_counter() - began
    assert loaded.kind == index.kind and len(loaded) == len(index)
    ms, _ = search_ms(index, object_like(rng, np.concatenate(built.label_centroids), preset.queries))
    return {"centroids": len(index), "kind": index.kind, "nprobe": index.nprobe, "build_s": build_s,
            "cached_ms": cached_ms, "load_s": load_s, "search_ms": ms}  # fmt: skip


def compare_kinds(
    ids: np.ndarray, centroids: np.ndarray, queries: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Flat and IVF over the same centroids: build seconds, ms per query, recall@1 of IVF against flat."""
    blobs = [c.tobytes() for c in np.asarray(centroids, np.float32)]
    near_queries = object_like(rng, centroids, queries)
    random_queries = normalise(rng.standard_normal((queries, centroids.shape[1])))
    out: dict[str, Any] = {"centroids": len(ids)}
    nearest: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for kind, limit in (("flat", len(ids)), ("ivf", 0)):
        began = time.perf_counter()
        index = vec.build(None, "bench", "", ids, blobs, flat_max_centroids=limit)
        build_s = time.perf_counter() - began
        ms, found = search_ms(index, near_queries)
        _, found_random = search_ms(index, random_queries)
        nearest[kind] = (found, found_random)
        out[kind] = {"build_s": build_s, "search_ms": ms, "nprobe": index.nprobe}
    out["recall_at_1"] = float(np.mean(nearest["ivf"][0] == nearest["flat"][0]))
    out["recall_at_1_random"] = float(np.mean(nearest["ivf"][1] == nearest["flat"][1]))
    out["ivf_speedup"] = out["flat"]["search_ms"] / out["ivf"]["search_ms"]
    return out


def sweep(builder: IndexBuilder, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Flat vs IVF at each of ``preset.sweep`` centroid counts, on centroids drawn like the index's."""
    label = CLASSES.index(builder.preset.label)
    points = []
    for count in builder.preset.sweep:
        looks = builder.looks[label, rng.integers(0, LOOKS, count)]
        centroids = near(rng, looks, CENTROID_SPREAD)
        points.append(compare_kinds(np.arange(count, dtype=np.int64), centroids, builder.preset.queries, rng))
    return points


def largest_index(store: Store, preset: Preset, rng: np.random.Generator) -> dict[str, Any]:
    """Flat vs IVF side by side over the query label's real centroids, read back from SQL."""
    clusters = store.clusters(preset.label, crops=False)
    ids = np.array([c.id for c in clusters], np.int64)
    return compare_kinds(ids, np.stack([c.centroid for c in clusters]), preset.queries, rng)


def growth_exponent(objects: list[int], costs: list[float]) -> float | None:
    """The slope of log(cost) against log(objects): 0 = does not grow with the index, 1 = grows like it."""
    if len(objects) < 2 or min(costs) <= 0:
        return None
    return float(np.polyfit(np.log(objects), np.log(costs), 1)[0])


def database_mb(url: str) -> float | None:
    """Size of a SQLite database file (None for a server)."""
    if not url.startswith("sqlite:///"):
        return None
    path = Path(url.removeprefix("sqlite:///"))
    return path.stat().st_size / 2**20 if path.exists() else None


#: The schema's indexes for the windowed lookup (its time columns) and the cluster index's fingerprint
#: (covering: count, max id and sum of sizes per run), timed with and without at the largest size.
LOOKUP_INDEXES = ("ix_clusters_label_video_time", "ix_clusters_label_run_size")

#: The candidate lookups measured (see :func:`measure_lookups`).
LOOKUPS = ("window", "video", "all_videos")


def sql_engine(url: str) -> sa.Engine:
    """A plain SQLAlchemy engine on the store's database (PostgreSQL through psycopg, as the store)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed)


def index_figures(store: Store, video: tuple[int, float], preset: Preset) -> dict[str, Any]:
    """What the lookup indexes speed up: the lookups and a current ``Store.cluster_index`` call."""
    cached = median_ms(lambda: store.cluster_index(preset.label), preset.repeats)
    return measure_lookups(store, video, preset) | {"cluster_index_cached_ms": cached}


def without_lookup_indexes(
    store: Store, url: str, video: tuple[int, float], preset: Preset
) -> dict[str, Any]:
    """The figures with the schema's indexes and, back to back, without :data:`LOOKUP_INDEXES`.

    The indexes are dropped in this run's own database for the second
    measurement and re-created after (``create_s``). ``speedup`` is without /
    with for every figure; the crop fetches (by primary key) use neither
    index, so their ratios show the noise.
    """
    indexes = sorted((i for i in CLUSTERS.indexes if i.name in LOOKUP_INDEXES), key=lambda i: str(i.name))
    assert len(indexes) == len(LOOKUP_INDEXES), "storage/schema.py no longer has the lookup indexes"
    out: dict[str, Any] = {"indexes": {str(i.name): [c.name for c in i.columns] for i in indexes}}
    out["with"] = index_figures(store, video, preset)
    engine = sql_engine(url)
    try:
        for index in indexes:
            index.drop(engine)
        try:
            out["without"] = index_figures(store, video, preset)
        finally:
            began = time.perf_counter()
            for index in indexes:
                index.create(engine)
            out["create_s"] = time.perf_counter() - began
    finally:
        engine.dispose()
    out["speedup"] = {
        key.removesuffix("_ms"): out["without"][key] / out["with"][key]
        for key in out["with"]
        if key.endswith("_ms")
    }
    return out


# -- the run ---------------------------------------------------------------------------------------------


def run(preset: Preset, url: str, index_dir: Path) -> dict[str, Any]:
    """Grow the index step by step, measuring after each; then flat vs IVF and the lookup indexes."""
    rng = np.random.default_rng(preset.seed + 1)  # the measurements' own draws
    steps = []
    with (
        Store(url, index_dir=index_dir) as store,
        tqdm(total=preset.steps[-1], unit="obj", desc="building") as bar,
    ):
        builder = IndexBuilder(store, preset, bar)
        for k, objects in enumerate(preset.steps):
            began = time.perf_counter()
            video = builder.grow_to(k, objects)
            built_s = time.perf_counter() - began
            steps.append({"build_s": built_s, **measure_step(builder, url, index_dir, video, rng)})
            bar.set_postfix_str(f"{objects:,} objects: lookup {steps[-1]['lookup']['window_ms']:.1f} ms")
        bar.close()
        result = summarise(preset, steps, largest_index(store, preset, rng), sweep(builder, rng))
        result["lookup_indexes"] = without_lookup_indexes(store, url, video, preset)
        result["crop_bytes_mean"] = float(np.mean([len(c) for c in builder.crops]))
        result["counts"] = store.counts()
    return result


def measure_step(
    builder: IndexBuilder, url: str, index_dir: Path, video: tuple[int, float], rng: np.random.Generator
) -> dict[str, Any]:
    """Every figure of one step: the step's insertion cost, lookups in ``video``, the cluster index."""
    store, preset, built = builder.store, builder.preset, builder.built
    return {
        "objects": built.objects,
        "clusters": built.clusters,
        "videos": len(built.videos),
        "finish_run_s": max(built.finish_s),
        **insertion(built.commits),
        "lookup": measure_lookups(store, video, preset),
        "cluster_index": measure_cluster_index(store, url, index_dir, built, preset, rng),
        "database_mb": database_mb(url),
        "load_average": os.getloadavg()[0],
    }


def summarise(
    preset: Preset, steps: list[dict[str, Any]], largest: dict[str, Any], points: list[dict[str, Any]]
) -> dict[str, Any]:
    """The headline figures (named after 10^6 objects; ``largest_objects`` says where they were measured)."""
    objects = [s["objects"] for s in steps]
    top = steps[-1]
    lookup_ms = top["lookup"]["window_ms"]
    return {
        "quick": preset.quick,
        "label": preset.label,
        "steps": steps,
        "largest_objects": top["objects"],
        "largest_clusters": top["clusters"],
        "lookup_ms_at_1e6": lookup_ms,
        "lookup_crops_ms_at_1e6": top["lookup"]["window_crops_ms"],
        "crop_fetch_ms_at_1e6": top["lookup"]["window_crop_fetch_ms"],
        "lookup_video_ms_at_1e6": top["lookup"]["video_ms"],
        "insert_per_object_us_at_1e6": top["insert_per_object_us"],
        "growth_exponent": growth_exponent(objects, [s["lookup"]["window_ms"] for s in steps]),
        "lookup_video_growth_exponent": growth_exponent(objects, [s["lookup"]["video_ms"] for s in steps]),
        "insert_growth_exponent": growth_exponent(objects, [s["insert_per_object_us"] for s in steps]),
        "search": largest,
        "sweep": points,
        "targets_met": {"lookup_within_10_ms": lookup_ms <= TARGET_LOOKUP_MS},
    }


def print_report(result: dict[str, Any]) -> None:
    """The steps, flat vs IVF, the lookup indexes and the headline figures."""
    print_steps(result)
    print_search(result)
    print_lookup_indexes(result["lookup_indexes"])
    where = "" if result["largest_objects"] == 1_000_000 else f" (at {result['largest_objects']:,} objects)"
    print(f"\nlookup_ms_at_1e6 {result['lookup_ms_at_1e6']:.2f} (with crops "
          f"{result['lookup_crops_ms_at_1e6']:.2f}, crop fetch {result['crop_fetch_ms_at_1e6']:.2f}), "
          f"insert_per_object_us_at_1e6 {result['insert_per_object_us_at_1e6']:.1f}{where}")  # fmt: skip
    window, video, insert = (fmt(result[f"{key}growth_exponent"], ".2f", missing="n/a")
                             for key in ("", "lookup_video_", "insert_"))  # fmt: skip
    print(f"growth exponents (log cost / log objects): 20 s window lookup {window}, "
          f"whole-video lookup {video}, insertion {insert}")  # fmt: skip
    met = "met" if result["targets_met"]["lookup_within_10_ms"] else "NOT met"
    print(
        f"target: candidate lookup <= {TARGET_LOOKUP_MS:g} ms at 10^6 objects / 10^5 clusters{where}: {met}"
    )


def print_steps(result: dict[str, Any]) -> None:
    label = result["label"]
    print(f"\ncandidate lookup of {label!r} without crops (ms, candidates), the window's with crops and its "
          f"crop fetch (ms), insertion, and {label!r}'s cluster index:")  # fmt: skip
    rows = []
    for s in result["steps"]:
        lk, ci = s["lookup"], s["cluster_index"]
        rows.append([f"{s['objects']:,}", f"{s['clusters']:,}", str(s["videos"]),
                     *(f"{lk[f'{key}_ms']:.2f} ({lk[f'{key}_candidates']})" for key in LOOKUPS),
                     f"{lk['window_crops_ms']:.2f}", f"{lk['window_crop_fetch_ms']:.2f}",
                     f"{s['insert_per_object_us']:.1f}", f"{ci['centroids']:,} {ci['kind']}",
                     f"{ci['build_s']:.2f}", f"{ci['search_ms']:.3f}",
                     f"{s['load_average']:.1f}"])  # fmt: skip
    print_table(["objects", "clusters", "videos", "20 s window", "whole video", "every video", "+crops",
                 "crop fetch", "us/object",
                 "cluster index", "build s", "search ms", "load"], rows)  # fmt: skip


def print_search(result: dict[str, Any]) -> None:
    print("\nnearest centroid, one query at a time on one thread: flat vs IVF over the same centroids")
    rows = []
    for point in [*result["sweep"], result["search"]]:
        rows.append([f"{point['centroids']:,}", f"{point['flat']['search_ms']:.3f}",
                     f"{point['ivf']['search_ms']:.3f}", str(point["ivf"]["nprobe"]),
                     f"{point['ivf']['build_s']:.2f}", f"{point['ivf_speedup']:.1f}x",
                     f"{point['recall_at_1']:.3f}", f"{point['recall_at_1_random']:.3f}",
                     "the index's own" if point is result["search"] else "synthetic"])  # fmt: skip
    print_table(["centroids", "flat ms", "IVF ms", "nprobe", "IVF build s", "speed-up", "recall@1",
                 "random dirs", "centroids of"], rows)  # fmt: skip


#: The figures the lookup indexes' table shows: (key, header).
INDEX_COLUMNS = (("window", "20 s window ms"), ("window_crops", "+crops ms"),
                 ("window_crop_fetch", "crop fetch ms"), ("video", "whole video ms"),
                 ("all_videos", "every video ms"),
                 ("cluster_index_cached", "cluster_index() ms"))  # fmt: skip


def print_lookup_indexes(indexes: dict[str, Any]) -> None:
    names = ", ".join(f"{name} ({', '.join(columns)})" for name, columns in indexes["indexes"].items())
    print(f"\nwith and without the schema's lookup indexes, back to back: {names}")
    rows = [
        [kind, *(f"{indexes[kind][f'{key}_ms']:.2f}" for key, _ in INDEX_COLUMNS)]
        for kind in ("with", "without")
    ]
    rows.append(["speed-up", *(f"{indexes['speedup'][key]:.2f}x" for key, _ in INDEX_COLUMNS)])
    print_table(["", *(header for _, header in INDEX_COLUMNS)], rows)
    print(f"re-creating them took {indexes['create_s']:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = new_parser(__doc__, "CI-sized run (10^4 .. 10^5 objects)", json="write every number here")
    parser.add_argument(
        "--db", help="an empty PostgreSQL (or SQLite) database URL (default: a temporary SQLite file)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="with --db: leave the synthetic runs in the database"
    )
    parser.add_argument("--steps", help="objects after each step, e.g. 1e4,1e5")
    parser.add_argument("--videos", type=int, help="new videos per step")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    steps = tuple(int(float(v)) for v in args.steps.split(",")) if args.steps else None
    preset = choose_preset(args, QUICK, FULL, steps=steps, videos=args.videos, seed=args.seed)
    print(f"{'quick' if preset.quick else 'full'} run: {preset}", flush=True)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'scale.db'}"
        result = run(preset, url, Path(tmp) / "faiss")
        if args.db and not args.keep:
            discard_synthetic(url)
    result["seconds"] = time.perf_counter() - began
    result["preset"] = asdict(preset)
    result["database"] = mask_url(url) if args.db else "sqlite (temporary file)"
    result["flat_max_centroids"] = vec.FLAT_MAX_CENTROIDS
    result["machine"] = machine()
    print_report(result)
    print(f"wall time {result['seconds']:.0f} s")
    write_result(args.json, result)
    return 0


def discard_synthetic(url: str) -> None:
    """Delete the runs this benchmark wrote into a user's database (their video rows stay)."""
    with Store(url) as store:
        for video in store.videos():
            if video.path.startswith("/synthetic/scale-"):
                for run_ in store.runs(video.id):
                    store.discard_run(run_.id)


if __name__ == "__main__":
    sys.exit(main())
