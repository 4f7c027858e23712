"""Ranges and distributed ingest: the index of N Dask workers is the index of one process.

The clip is split into ranges of 40 frames (2 chunks each). One process
ingests the ranges one after another; a LocalCluster of 2 workers ingests
them in parallel into a real PostgreSQL. Both must hold the same objects,
labels and clusters, and answer label queries with the same frames. A worker
killed with SIGKILL in the middle of a range must cost nothing: its range is
taken over and resumed, and the index is still the same.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mxn.cli import main
from mxn.datasets.world.video import render_clip
from mxn.defaults import default_model_path
from mxn.ingest.config import IngestConfig
from mxn.ingest.distributed import DistributedIngest, dask_client
from mxn.ingest.extraction import ExtractorConfig
from mxn.ingest.merging import plan_merges
from mxn.ingest.pipeline import VideoIngest, ingest_videos
from mxn.query.executor import QueryExecutor
from mxn.storage.store import Store

#: 120 frames in 3 ranges of 40 frames, 2 chunks each.
RANGED = IngestConfig(
    chunk_frames=20, range_frames=40, extractor=ExtractorConfig(warmup=10), cluster_threshold=0.3
)
#: The same settings as one range: what an uninterrupted single pass finds.
WHOLE = dataclasses.replace(RANGED, range_frames=9000)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """8 s of the downtown junction at 320x180, 15 fps (120 frames)."""
    out = tmp_path_factory.mktemp("ranged-clips") / "downtown.mp4"
    render_clip(out, "downtown", seconds=8, seed=11, size=(320, 180), fps=15, progress=False)
    return out


#: What a worker's CNN may differ by in a float: TensorFlow picks kernels and reduction order per
#: process (threads, CPU features), so the same crop can score 0.0042682416 in one and 0.0042682434 in
#: another. Which objects, boxes, labels and members there are must match exactly.
FLOAT_NOISE = 1e-5


def objects_of(store: Store) -> list[tuple]:
    return sorted((o.frame, o.box, tuple(sorted(o.labels.items()))) for o in store.objects())


def clusters_of(store: Store) -> list[tuple]:
    out = []
    for label in store.labels():
        for c in store.clusters(label):
            members = tuple(sorted((m.frame, m.box) for m in store.cluster_members(c.id)))
            out.append((label, c.size, c.first_time, c.last_time, members, c.centroid))
    return sorted(out, key=lambda c: c[:5])


def assert_same_objects(got: list[tuple], want: list[tuple]) -> None:
    """The same objects with the same labels; their scores equal up to :data:`FLOAT_NOISE`."""

    def names(objects: list[tuple]) -> list[tuple]:
        return [(frame, box, [k for k, _ in labels]) for frame, box, labels in objects]

    def scores(objects: list[tuple]) -> list[float]:
        return [v for _, _, labels in objects for _, v in labels]

    assert names(got) == names(want)
    np.testing.assert_allclose(scores(got), scores(want), rtol=0, atol=FLOAT_NOISE)


def assert_same_clusters(got: list[tuple], want: list[tuple]) -> None:
    """The same clusters with the same members; their centroids equal up to :data:`FLOAT_NOISE`."""
    assert [c[:5] for c in got] == [c[:5] for c in want]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a[5], b[5], rtol=0, atol=FLOAT_NOISE)


def answers_of(store: Store, models) -> dict:
    """The frames of every label query in focus and mxn modes (no cache, so each runs its CNNs)."""
    q = QueryExecutor(store, models["gt"], models["query"], use_cache=False)
    return {
        (label, mode): [(v.name, v.frames) for v in q.run(label, mode=mode).videos]
        for label in store.labels()
        for mode in ("focus", "mxn")
    }


@pytest.fixture(scope="module")
def single(tmp_path_factory, clip, models) -> dict:
    """The reference: one process, ranges one after another, on SQLite."""
    url = f"sqlite:///{tmp_path_factory.mktemp('single') / 'single.db'}"
    with Store(url) as store:
        [result] = ingest_videos([clip], store, models["ingest"], RANGED, progress=False)
        assert result.status == "done", result.error
        return {
            "result": result,
            "objects": objects_of(store),
            "clusters": clusters_of(store),
            "answers": answers_of(store, models),
        }


def test_ranges_find_every_object_of_one_pass_and_merge_their_clusters(tmp_path, clip, models, single):
    with Store(f"sqlite:///{tmp_path / 'whole.db'}") as store:
        [whole] = ingest_videos([clip], store, models["ingest"], WHOLE, progress=False)
        assert whole.stats["ranges"] == 1 and whole.stats["clusters_merged"] == 0
        assert_same_objects(objects_of(store), single["objects"])  # nothing at a seam lost or found twice
        whole_members = {(c[0], m) for c in clusters_of(store) for m in c[4]}
    stats = single["result"].stats
    assert stats["ranges"] == 3 and stats["frames"] == 120 and stats["objects"] == len(single["objects"])
    assert stats["clusters_merged"] > 0, "the ranges of one scene must share some clusters"
    assert stats["clusters"] == len(single["clusters"])
    # every (object, label) pair is in exactly one merged cluster, as in the single pass
    members = [(c[0], m) for c in single["clusters"] for m in c[4]]
    assert len(members) == len(set(members)) and set(members) == whole_members


def test_merging_follows_the_distance_rule_only_across_ranges():
    import numpy as np

    from mxn.storage.records import ClusterState, range_seq_base

    def cluster(seq: int, x: float, size: int = 1) -> ClusterState:
        centroid = np.array([x, np.sqrt(1 - x * x)], np.float32)
        return ClusterState(seq, "car", centroid, size, seq, b"", 0.0, first_time=seq, last_time=seq)

    r1 = range_seq_base(1)
    clusters = [
        cluster(0, 1.0, 3),
        cluster(1, 0.0),
        cluster(r1, 0.99, 1),
        cluster(r1 + 1, 0.98),
        cluster(r1 + 2, -1),
    ]
    [merge] = plan_merges(clusters, threshold=0.1)
    # both near clusters of range 1 fold into cluster 0; range 1's own clusters never merge with each other
    assert merge.into.seq == 0 and merge.absorbed == (r1, r1 + 1) and merge.into.size == 5
    assert merge.into.representative_seq == 0 and merge.into.last_time == r1 + 1
    assert plan_merges(clusters, threshold=0.0) == []
    with pytest.raises(ValueError, match="threshold"):
        plan_merges(clusters, threshold=5)


def test_two_workers_on_postgresql_build_the_single_process_index(postgres_db, clip, models, single):
    with (
        dask_client(workers=2) as client,
        DistributedIngest(
            postgres_db, default_model_path("ingest"), RANGED, client, progress=False
        ) as runner,
    ):
        [result] = runner.ingest([clip])
        assert result.status == "done", result.error
        again = runner.ingest([clip])  # already indexed: no task runs
        assert again[0].status == "skipped"
    with Store(postgres_db) as store:
        assert_same_objects(objects_of(store), single["objects"])
        assert_same_clusters(clusters_of(store), single["clusters"])
        assert answers_of(store, models) == single["answers"]
        [run] = store.runs()
        assert {r.status for r in store.ranges(run.id)} == {"done"}
    assert result.stats["objects"] == single["result"].stats["objects"]
    assert result.stats["wall_s"] > 0


def _kill_a_worker_mid_range(
    url: str, run_ready: threading.Event, killed: list[str], stop: threading.Event
) -> None:
    """Watch the ranges in SQL; SIGKILL the process holding the first range caught between chunks."""
    run_ready.wait(60)
    with Store(url) as store:
        while not stop.is_set() and not killed:
            for run in store.runs(status="running"):
                for r in store.ranges(run.id):
                    if (
                        r.status == "running"
                        and r.owner
                        and r.start_frame < r.next_frame < (r.end_frame or 1e9)
                    ):
                        pid = int(r.owner.split(":")[1])
                        os.kill(pid, signal.SIGKILL)
                        killed.append(f"range {r.index} at frame {r.next_frame}")
                        return
            time.sleep(0.005)


def test_a_killed_worker_loses_nothing_and_doubles_nothing(postgres_db, clip, models, single):
    killed: list[str] = []
    ready, stop = threading.Event(), threading.Event()
    watcher = threading.Thread(target=_kill_a_worker_mid_range, args=(postgres_db, ready, killed, stop))
    watcher.start()
    try:
        with (
            dask_client(workers=2) as client,
            DistributedIngest(
                postgres_db, default_model_path("ingest"), RANGED, client, progress=False
            ) as runner,
        ):
            ready.set()
            [result] = runner.ingest([clip])
    finally:
        stop.set()
        watcher.join()
    assert killed, "no range was caught between two chunks"
    assert result.status == "done", result.error
    with Store(postgres_db) as store:
        [run] = store.runs()
        assert max(r.attempts for r in store.ranges(run.id)) == 2  # the killed range was taken over once
        assert_same_objects(objects_of(store), single["objects"])
        assert_same_clusters(clusters_of(store), single["clusters"])
    assert result.stats["range_attempts"] == 4


def test_a_killed_client_resumes_its_ranges(tmp_path, clip, models, single):
    """A single process stopped after range 1's first chunk; the next run resumes ranges 1 and 2 only."""
    url = f"sqlite:///{tmp_path / 'resumed.db'}"

    class StopError(Exception):
        pass

    def stop_in_range_1(next_frame: int) -> None:
        if next_frame == 60:
            raise StopError

    with Store(url) as store:
        with pytest.raises(StopError):
            VideoIngest(store, models["ingest"], RANGED, progress=False, on_chunk=stop_in_range_1).ingest(
                str(clip)
            )
        [run] = store.runs()
        assert [(r.status, r.next_frame) for r in store.ranges(run.id)] == [
            ("done", 40),
            ("running", 60),
            ("pending", 80),
        ]
        result = VideoIngest(store, models["ingest"], RANGED, progress=False).ingest(str(clip))
        assert result.status == "done" and result.resumed_from == 60
        assert_same_objects(objects_of(store), single["objects"])
        assert_same_clusters(clusters_of(store), single["clusters"])


def test_cli_workers_and_a_bad_video(tmp_path, clip, single):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    args = ["ingest", str(clip), str(bad), "--db", db, "--workers", "2", "--quiet"]
    args += ["--chunk-frames", "20", "--range-frames", "40", "--warmup", "10", "--cluster-threshold", "0.3"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 1, out.output
    assert "1 of 2 videos failed" in out.output and "broken.mp4" in out.output
    with Store(db) as store:
        assert_same_objects(objects_of(store), single["objects"])
    both = CliRunner().invoke(main, ["ingest", str(clip), "--workers", "1", "--scheduler", "tcp://x:1"])
    assert both.exit_code == 2 and "not both" in both.output


def test_cli_on_an_existing_scheduler(tmp_path, clip, single):
    from distributed import LocalCluster

    db = f"sqlite:///{tmp_path / 'scheduler.db'}"
    args = ["ingest", str(clip), "--db", db, "--quiet", "--chunk-frames", "20", "--range-frames", "40"]
    args += ["--warmup", "10", "--cluster-threshold", "0.3", "--json", str(tmp_path / "stats.json")]
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
        out = CliRunner().invoke(main, [*args, "--scheduler", cluster.scheduler_address])
    assert out.exit_code == 0, out.output
    assert "3 ranges" in out.output
    with Store(db) as store:
        assert_same_objects(objects_of(store), single["objects"])
        assert_same_clusters(clusters_of(store), single["clusters"])
