"""The store on SQLite and on a real PostgreSQL: transactions, replacement of runs, reading, FAISS caches."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest
import sqlalchemy as sa

from mxn.storage import vectors
from mxn.storage.records import (
    ClusterMerge,
    ClusterState,
    ObjectRecord,
    RunRecord,
    Verdict,
    VideoInfo,
    range_seq_base,
)
from mxn.storage.schema import SCHEMA_VERSION
from mxn.storage.store import DEFAULT_URL, RangeTakenError, Store, StoreError, default_url

DIM = 8
LABELS = ("bus", "car", "truck")
#: The face-labelling tables' counts in a store that labelled no faces (see test_storage_faces.py).
FACES_NONE = dict.fromkeys(["face_movies", "face_runs", "face_rows", "face_features"], 0)


def video_info(n: int = 0) -> VideoInfo:
    return VideoInfo(f"v{n}.mp4", f"/videos/v{n}.mp4", f"{n:064x}", 10.0, 320, 180, 600, 60.0)


def make_objects(rng: np.random.Generator, seqs: range) -> list[ObjectRecord]:
    """Object ``seq`` appears at time seq/10 s, labelled LABELS[seq % 3] (and "vehicle" when even)."""
    objects = []
    for seq in seqs:
        labels = {LABELS[seq % 3]: 0.5 + (seq % 7) / 20}
        if seq % 2 == 0:
            labels["vehicle"] = 0.25
        box = (seq, seq + 1, seq + 30, seq + 40)
        feature = rng.standard_normal(DIM).astype(np.float32)
        objects.append(ObjectRecord(seq, seq, seq / 10, box, labels, feature))
    return objects


def make_cluster(rng: np.random.Generator, seq: int, label: str, members: list[int]) -> ClusterState:
    return ClusterState(
        seq=seq,
        label=label,
        centroid=rng.standard_normal(DIM).astype(np.float32),
        size=len(members),
        representative_seq=members[0],
        representative_crop=b"\x89PNG" + rng.bytes(40),
        representative_distance=float(rng.random()) / 3,  # not a "round" float: tests exactness
        first_time=members[0] / 10,
        last_time=members[-1] / 10,
        new_members=list(members),
    )


def ingest(
    store: Store, video_id: int, mode: str = "mxn", n: int = 30, seed: int = 0, finish: bool = True
) -> tuple[RunRecord, list[ObjectRecord], list[ClusterState]]:
    """A run with ``n`` objects in two chunks and one cluster per label of each chunk."""
    rng = np.random.default_rng(seed)
    run = store.start_run(video_id, mode, {"exits": [0, 1], "topk": 2}, "sha")
    objects = make_objects(rng, range(n))
    clusters: list[ClusterState] = []
    for chunk in (objects[: n // 2], objects[n // 2 :]):
        fresh = []
        for label in LABELS:
            members = [o.seq for o in chunk if label in o.labels]
            fresh.append(make_cluster(rng, len(clusters) + len(fresh), label, members))
        clusters += fresh
        store.commit_chunk(run.id, chunk[-1].frame + 1, chunk, fresh, {"objects": chunk[-1].seq + 1})
    if finish:
        store.finish_range(run.id, 0, {"objects": n})
        run = store.finish_run(run.id, {"objects": n})
    return run, objects, clusters


def open_store(url: str, tmp_path: Path) -> Store:
    """SQLite keeps its FAISS files beside the database; PostgreSQL's go to the test's directory."""
    return Store(url) if url.startswith("sqlite") else Store(url, index_dir=tmp_path / "faiss")


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    with open_store(store_url, tmp_path) as s:
        yield s


def index_dir(store: Store) -> Path:
    assert store.index_dir is not None
    return store.index_dir


# -- opening ---------------------------------------------------------------------------------------------


def test_new_database_gets_the_schema_and_another_version_is_refused(store_url, tmp_path):
    with open_store(store_url, tmp_path) as store:
        empty = [
            "videos",
            "runs",
            "objects",
            "object_labels",
            "clusters",
            "cluster_members",
            "query_verdicts",
        ]
        assert store.counts() == dict.fromkeys(empty, 0) | FACES_NONE
    with open_store(store_url, tmp_path) as store:  # reopening an existing database
        assert store.videos() == []
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_info SET version = 99"))
    engine.dispose()
    with pytest.raises(StoreError, match=rf"version 99 found.*expects version {SCHEMA_VERSION}"):
        open_store(store_url, tmp_path)


def test_a_version_1_database_is_upgraded_in_place(store_url, tmp_path):
    with open_store(store_url, tmp_path) as store:
        video = store.add_video(video_info())
        ingest(store, video.id)
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:  # what version 1 looked like: no verdict cache
        conn.execute(sa.text("DROP TABLE query_verdicts"))
        conn.execute(sa.text("UPDATE schema_info SET version = 1"))
    with open_store(store_url, tmp_path) as store:
        assert store.counts()["objects"] == 30 and store.counts()["query_verdicts"] == 0
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version FROM schema_info")).scalar() == SCHEMA_VERSION
    engine.dispose()


#: The cluster indexes schema version 4 added (an upgrade creates them on the existing table).
NEW_IN_4 = ("ix_clusters_label_video_time", "ix_clusters_label_run_size")


def test_a_version_3_database_gains_ranges_and_64_bit_seqs(store_url, tmp_path):
    with open_store(store_url, tmp_path) as store:
        video = store.add_video(video_info())
        ingest(store, video.id)
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:  # what version 3 looked like: no ranges, 32-bit seqs on PostgreSQL
        conn.execute(sa.text("DROP TABLE ingest_ranges"))
        for index in NEW_IN_4:
            conn.execute(sa.text(f"DROP INDEX {index}"))
        if conn.dialect.name == "postgresql":
            for table in ("objects", "clusters"):
                conn.execute(sa.text(f"ALTER TABLE {table} ALTER COLUMN seq TYPE INTEGER"))
        conn.execute(sa.text("UPDATE schema_info SET version = 3"))
    try:
        with open_store(store_url, tmp_path) as store:
            assert store.counts()["objects"] == 30  # the old index is intact
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT version FROM schema_info")).scalar() == SCHEMA_VERSION
                assert set(NEW_IN_4) <= {i["name"] for i in sa.inspect(conn).get_indexes("clusters")}
            run = store.start_run(store.add_video(video_info(1)).id, "mxn", {}, "sha", [(0, 10), (10, None)])
            rng = np.random.default_rng(9)
            far = range_seq_base(1)  # range 1 numbers from 2^32: needs 64-bit seqs
            objects = make_objects(rng, range(3))
            for o in objects:
                o.seq += far
            cluster = make_cluster(rng, far, "car", [far, far + 2])
            store.commit_chunk(run.id, 20, objects, [cluster], {}, range_index=1)
            assert [c.seq for c in store.load_clusters(run.id, range_index=1)] == [far]
            assert store.load_clusters(run.id, range_index=0) == []
    finally:
        engine.dispose()


def test_bad_urls_raise_store_error_with_the_password_masked(tmp_path):
    with pytest.raises(StoreError, match="not a database URL"):
        Store("postgresql://me@dbhost:port/mxn")  # a scheme, then no URL SQLAlchemy can read
    with pytest.raises(StoreError, match="unsupported driver 'mysql'") as err:
        Store("mysql://me:secret@db.example/mxn")
    assert "secret" not in str(err.value) and "***" in str(err.value)
    with pytest.raises(
        StoreError, match=r"cannot open database postgresql://me:\*\*\*@127.0.0.1:1/mxn"
    ) as err:
        Store("postgresql://me:secret@127.0.0.1:1/mxn")  # nothing listens on port 1
    assert "secret" not in str(err.value)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(StoreError, match="cannot open database"):
        Store(f"sqlite:///{tmp_path / 'a_file' / 'x.db'}")


def test_default_url_honours_mxn_db(monkeypatch):
    monkeypatch.delenv("MXN_DB", raising=False)
    assert default_url() == DEFAULT_URL
    monkeypatch.setenv("MXN_DB", "postgresql://somewhere/mxn")
    assert default_url() == "postgresql://somewhere/mxn"


# -- writing ---------------------------------------------------------------------------------------------


def test_add_video_is_idempotent_on_the_content_hash(store):
    first = store.add_video(video_info(1))
    renamed = dataclasses.replace(video_info(1), name="other.mp4", path="/elsewhere/other.mp4")
    assert store.add_video(renamed) == first  # same bytes: the same video, first name kept
    second = store.add_video(video_info(2))
    assert second.id != first.id
    assert store.videos() == [first, second]
    assert store.find_video(video_info(2).content_hash) == second
    assert store.find_video("f" * 64) is None


def test_commit_chunk_round_trip(store):
    video = store.add_video(video_info())
    run = store.start_run(video.id, "mxn", {"topk": 2, "exits": [0, 4]}, "abc")
    assert (run.status, run.next_frame, run.stats, run.config) == (
        "running",
        0,
        {},
        {"topk": 2, "exits": [0, 4]},
    )
    rng = np.random.default_rng(3)
    first, second = make_objects(rng, range(10)), make_objects(rng, range(10, 20))
    car = make_cluster(rng, 0, "car", [1, 4, 7])
    store.commit_chunk(run.id, 10, first, [car], {"objects": np.int64(10)})  # NumPy counters are fine
    assert car.new_members == []  # cleared once committed
    # the next chunk: the cluster grows (new members from this chunk) and moves; a new cluster
    # whose representative is an object of the first chunk
    car.new_members, car.size, car.last_time = [10, 13, 16, 19], 7, 1.9
    car.centroid, car.representative_seq, car.active = rng.standard_normal(DIM).astype(np.float32), 13, False
    bus = make_cluster(rng, 1, "bus", [0, 3, 12])
    store.commit_chunk(run.id, 20, second, [car, bus], {"objects": 20})
    [progress] = store.ranges(run.id)
    assert (progress.next_frame, progress.stats, progress.status) == (20, {"objects": 20}, "pending")
    with pytest.raises(StoreError, match=r"ranges \[0\] are not done"):
        store.finish_run(run.id, {})
    store.finish_range(run.id, 0, {"objects": 20})
    done = store.finish_run(run.id, {"objects": 20, "frames": 20})
    assert (done.status, done.stats) == ("done", {"objects": 20, "frames": 20})

    objects = store.objects()
    stored = {o.frame: o for o in objects}
    assert len(objects) == 20 and [o.id for o in objects] == sorted(o.id for o in objects)
    for o in first + second:
        s = stored[o.frame]
        assert (s.time, s.box, s.labels, s.video_id, s.run_id) == (o.time, o.box, o.labels, video.id, run.id)
    features = store.object_features([o.id for o in objects])
    for o in first + second:
        got = features[stored[o.frame].id]
        assert got.dtype == np.float32 and got.tobytes() == o.feature.tobytes()
    assert store.labels() == ["bus", "car"]
    [c] = store.clusters("car")
    assert (c.size, c.first_time, c.last_time, c.video_id, c.run_id) == (7, 0.1, 1.9, video.id, run.id)
    assert c.centroid.tobytes() == car.centroid.tobytes() and c.representative_crop == car.representative_crop
    assert c.representative_object_id == stored[13].id
    assert [m.frame for m in store.cluster_members(c.id)] == [1, 4, 7, 10, 13, 16, 19]
    [b] = store.clusters("bus")
    [lean] = store.clusters("bus", crops=False)  # a query's lookup: crops only when a CNN needs them
    assert lean.representative_crop == b"" and (lean.id, lean.size, lean.first_time) == (
        b.id,
        b.size,
        b.first_time,
    )
    assert store.cluster_crops([b.id, c.id]) == {b.id: bus.representative_crop, c.id: car.representative_crop}
    assert b.representative_object_id == stored[0].id
    assert [m.frame for m in store.cluster_members(b.id)] == [0, 3, 12]
    assert store.cluster_members(b.id)[0].labels == first[0].labels
    n_labels = sum(len(o.labels) for o in first + second)
    assert store.counts() == {
        "videos": 1,
        "runs": 1,
        "objects": 20,
        "object_labels": n_labels,
        "clusters": 2,
        "cluster_members": 10,
        "query_verdicts": 0,
        **FACES_NONE,
    }


def test_a_failing_chunk_writes_nothing(store):
    video = store.add_video(video_info())
    run = store.start_run(video.id, "mxn", {}, "sha")
    rng = np.random.default_rng(0)
    store.commit_chunk(
        run.id, 10, make_objects(rng, range(10)), [make_cluster(rng, 0, "car", [1, 4])], {"n": 1}
    )
    before = store.counts()
    bad_cases = [
        # a new member that was never stored
        (make_objects(rng, range(10, 20)), [make_cluster(rng, 1, "car", [11, 99])]),
        # an object seq stored already, after good rows of the same chunk
        (
            make_objects(rng, range(20, 25)) + make_objects(rng, range(3, 4)),
            [make_cluster(rng, 1, "bus", [20])],
        ),
        # the same member twice in one cluster
        (make_objects(rng, range(30, 35)), [make_cluster(rng, 1, "bus", [30, 31, 30])]),
    ]
    for objects, clusters in bad_cases:
        wanted = [list(c.new_members) for c in clusters]
        with pytest.raises(StoreError, match=f"committing a chunk of run {run.id}|never stored"):
            store.commit_chunk(run.id, 40, objects, clusters, {"n": 2})
        assert store.counts() == before
        assert [c.new_members for c in clusters] == wanted  # kept: the caller may retry
        [current] = store.ranges(run.id)
        assert (current.next_frame, current.stats) == (10, {"n": 1})


def test_a_range_commits_only_for_the_attempt_that_holds_it(store):
    video = store.add_video(video_info())
    run = store.start_run(video.id, "mxn", {}, "sha", [(0, 20), (20, None)])
    assert [(r.index, r.start_frame, r.end_frame, r.status, r.next_frame) for r in store.ranges(run.id)] == [
        (0, 0, 20, "pending", 0),
        (1, 20, None, "pending", 20),
    ]
    rng = np.random.default_rng(4)
    first = store.claim_range(run.id, 1, "worker-a")
    assert (first.status, first.owner, first.attempts) == ("running", "worker-a", 1)
    store.commit_chunk(run.id, 30, [], [], {"n": 1}, range_index=1, owner="worker-a")
    retry = store.claim_range(run.id, 1, "worker-b")  # the scheduler gave worker-a up for dead
    assert (retry.owner, retry.attempts, retry.next_frame) == ("worker-b", 2, 30)
    before = store.counts()
    with pytest.raises(RangeTakenError, match=r"another attempt holds it now \(worker-b\)"):
        late = make_objects(rng, range(5))
        store.commit_chunk(run.id, 40, late, [], {"n": 2}, range_index=1, owner="worker-a")
    assert store.counts() == before  # the late writer's chunk left nothing behind
    with pytest.raises(RangeTakenError, match="another attempt holds it"):
        store.finish_range(run.id, 1, {}, owner="worker-a")
    store.finish_range(run.id, 1, {"n": 2}, owner="worker-b")
    with pytest.raises(StoreError, match="already done"):
        store.claim_range(run.id, 1, "worker-c")
    with pytest.raises(StoreError, match=r"ranges \[0\] are not done"):
        store.finish_run(run.id, {})


def test_finishing_a_run_applies_cluster_merges_atomically(store):
    video = store.add_video(video_info())
    run = store.start_run(video.id, "mxn", {}, "sha", [(0, 20), (20, None)])
    rng = np.random.default_rng(6)
    late = range_seq_base(1)
    early_objects, late_objects = make_objects(rng, range(4)), make_objects(rng, range(4, 8))
    for o in late_objects:
        o.seq += late - 4  # range 1's seqs, at frames 4-7
    early = make_cluster(rng, 0, "car", [0, 1])
    kept = make_cluster(rng, 1, "car", [2, 3])
    absorbed = make_cluster(rng, late, "car", [late, late + 1])
    apart = make_cluster(rng, late + 1, "car", [late + 2, late + 3])
    store.commit_chunk(run.id, 20, early_objects, [early, kept], {}, range_index=0)
    store.commit_chunk(run.id, 30, late_objects, [absorbed, apart], {}, range_index=1)
    for index in (0, 1):
        store.finish_range(run.id, index, {})
    grown = dataclasses.replace(early, size=4, last_time=absorbed.last_time, new_members=[])
    grown.centroid = rng.standard_normal(DIM).astype(np.float32)
    with pytest.raises(StoreError, match="do not exist"):  # a bad plan changes nothing
        store.finish_run(run.id, {}, [ClusterMerge(grown, (late + 99,))])
    assert store.get_run(run.id).status == "running" and store.counts()["clusters"] == 4
    store.finish_run(run.id, {}, [ClusterMerge(grown, (late,))])
    by_first = {c.first_time: c for c in store.clusters("car")}
    assert len(by_first) == 3
    merged = by_first[early.first_time]
    assert merged.size == 4 and merged.centroid.tobytes() == grown.centroid.tobytes()
    assert [m.frame for m in store.cluster_members(merged.id)] == [0, 1, 4, 5]
    assert store.counts()["cluster_members"] == 8  # moved, not copied


def test_only_running_runs_take_chunks(store):
    video = store.add_video(video_info())
    run, *_ = ingest(store, video.id)
    for action in (
        lambda: store.commit_chunk(run.id, 99, [], [], {}),
        lambda: store.finish_run(run.id, {}),
        lambda: store.fail_run(run.id, "late"),
    ):
        with pytest.raises(StoreError, match=f"run {run.id}: it is done, not running"):
            action()
    with pytest.raises(StoreError, match="no run 12345"):
        store.get_run(12345)


def test_resume_loads_the_clusters_bit_exactly(store_url, tmp_path):
    with open_store(store_url, tmp_path) as store:
        video = store.add_video(video_info())
        run, _, clusters = ingest(store, video.id, finish=False)
        store.commit_chunk(run.id, 30, [], [], {"objects": 30})
    clusters[1].active = False  # as committed below
    with open_store(store_url, tmp_path) as store:  # a new process after a kill
        store.commit_chunk(run.id, 30, [], [clusters[1]], {"objects": 30})
        loaded = store.load_clusters(run.id, active_only=False)
        assert [c.seq for c in loaded] == [c.seq for c in clusters]
        for got, want in zip(loaded, clusters, strict=True):
            assert got.centroid.dtype == np.float32 and got.centroid.tobytes() == want.centroid.tobytes()
            got_fields = {k: v for k, v in vars(got).items() if k != "centroid"}
            assert got_fields == {k: v for k, v in vars(want).items() if k != "centroid"}
            assert got.new_members == []
        active = store.load_clusters(run.id)
        assert [c.seq for c in active] == [c.seq for c in clusters if c.active]


# -- run life cycle --------------------------------------------------------------------------------------


def test_finish_replaces_the_older_index_of_the_same_video_and_mode_only(store):
    video, other = store.add_video(video_info(0)), store.add_video(video_info(1))
    ingest(store, video.id, seed=1)
    focus, *_ = ingest(store, video.id, mode="focus", seed=2)
    elsewhere, *_ = ingest(store, other.id, seed=3)
    failed, *_ = ingest(store, video.id, finish=False, seed=4)
    store.fail_run(failed.id, "decoder exploded")
    new, objects, _ = ingest(store, video.id, finish=False, seed=5)
    assert len(store.objects(video.id)) == 30  # the old index still answers while the new one runs
    store.finish_range(new.id, 0, {})
    store.finish_run(new.id, {"objects": 30})
    assert [r.id for r in store.runs()] == [focus.id, elsewhere.id, new.id]
    assert {o.run_id for o in store.objects(video.id)} == {new.id}
    assert len(store.objects(video.id, mode="focus")) == 30
    assert len(store.objects(other.id)) == 30
    features = store.object_features([o.id for o in store.objects(video.id)])
    assert sorted(f.tobytes() for f in features.values()) == sorted(o.feature.tobytes() for o in objects)


def test_running_and_failed_runs_are_invisible(store):
    video = store.add_video(video_info())
    run, _, _ = ingest(store, video.id, finish=False)
    counts = store.counts()
    assert counts["objects"] == 30 and counts["clusters"] == 6

    def assert_invisible() -> None:
        assert store.objects(mode=None) == [] and store.labels(mode=None) == []
        assert all(store.clusters(label, mode=None) == [] for label in LABELS)
        ids = range(1, 100)
        assert all(store.cluster_members(i) == [] for i in ids) and store.object_features(list(ids)) == {}

    assert_invisible()
    store.fail_run(run.id, "truncated file")
    assert_invisible()
    [failed] = store.runs(status="failed")
    assert (failed.id, failed.error) == (run.id, "truncated file")
    assert store.counts() == counts  # kept for the user to inspect


def test_discard_run_removes_every_row(store):
    video = store.add_video(video_info())
    run, *_ = ingest(store, video.id, finish=False)
    done, *_ = ingest(store, video.id, mode="focus")
    store.discard_run(run.id)
    store.discard_run(done.id)
    assert store.counts() == {
        "videos": 1,
        "runs": 0,
        "objects": 0,
        "object_labels": 0,
        "clusters": 0,
        "cluster_members": 0,
        "query_verdicts": 0,
        **FACES_NONE,
    }
    with pytest.raises(StoreError, match=f"no run {run.id}"):
        store.discard_run(run.id)


def test_verdicts_are_cached_replaced_and_go_with_their_run(store):
    video = store.add_video(video_info())
    ingest(store, video.id)
    ids = [c.id for c in store.clusters("car")]
    store.save_verdicts(
        "car", "gt:abc", [Verdict(ids[0], "accept", None, 0.9), Verdict(ids[1], "reject", None, 0.1)]
    )
    store.save_verdicts("car", "mxn:def", [Verdict(ids[0], "undecided", None, 0.5)])
    assert store.verdicts(ids, "car", "gt:abc") == {
        ids[0]: Verdict(ids[0], "accept", None, 0.9),
        ids[1]: Verdict(ids[1], "reject", None, 0.1),
    }
    assert store.verdicts(ids, "car", "mxn:other") == {} and store.verdicts(ids, "bus", "gt:abc") == {}
    store.save_verdicts("car", "mxn:def", [Verdict(ids[0], "accept", 2, 0.97)])  # replaces, never doubles
    assert store.verdicts(ids, "car", "mxn:def") == {ids[0]: Verdict(ids[0], "accept", 2, 0.97)}
    assert store.counts()["query_verdicts"] == 3
    # a re-ingest replaces the run, its clusters and their verdicts
    ingest(store, video.id, seed=9)
    assert store.counts()["query_verdicts"] == 0
    assert store.verdicts(ids, "car", "gt:abc") == {}


def test_members_of_many_clusters_at_once(store):
    video = store.add_video(video_info())
    ingest(store, video.id)
    clusters = [c for label in LABELS for c in store.clusters(label)]
    together = store.members([c.id for c in clusters])
    assert together == {c.id: store.cluster_members(c.id) for c in clusters}


# -- reading ---------------------------------------------------------------------------------------------


def test_time_label_video_and_mode_filters(store):
    one, two = store.add_video(video_info(1)), store.add_video(video_info(2))
    ingest(store, one.id, n=30)
    ingest(store, two.id, n=20)
    ingest(store, one.id, mode="focus", n=10)
    assert store.labels() == ["bus", "car", "truck"]  # the labels that have clusters
    assert len(store.objects()) == 50 and len(store.objects(mode=None)) == 60
    assert len(store.objects(mode="focus")) == 10
    window = store.objects(one.id, start=1.0, end=1.5)
    assert [o.frame for o in window] == [10, 11, 12, 13, 14, 15]
    cars = store.objects(one.id, label="car")
    assert [o.frame for o in cars] == list(range(1, 30, 3))
    assert all(set(o.labels) == ({"car", "vehicle"} if o.frame % 2 == 0 else {"car"}) for o in cars)
    assert [o.frame for o in store.objects(two.id, start=0.5, end=1.0, label="vehicle")] == [6, 8, 10]
    # clusters: chunk 1 of video one spans frames 0-14, chunk 2 frames 15-29 (0.1 s apart)
    spans = [(c.first_time, c.last_time) for c in store.clusters("car", one.id)]
    assert spans == [(0.1, 1.3), (1.6, 2.8)]
    assert len(store.clusters("car", one.id, start=1.35, end=1.55)) == 0  # in the gap between them
    assert len(store.clusters("car", one.id, start=1.2, end=1.7)) == 2  # overlaps both
    assert (
        len(store.clusters("car", one.id, end=0.1)) == 1
        and len(store.clusters("car", one.id, start=2.8)) == 1
    )
    assert len(store.clusters("car")) == 4 and len(store.clusters("car", mode=None)) == 6


def test_a_large_chunk_commits_in_one_go(store):
    """More rows than one IN list or statement may hold on SQLite, so batching is exercised."""
    video = store.add_video(video_info())
    run = store.start_run(video.id, "mxn", {}, "sha")
    rng = np.random.default_rng(0)
    objects = make_objects(rng, range(12_000))
    clusters = [make_cluster(rng, i, label, [o.seq for o in objects if label in o.labels]) for i, label in
                enumerate(LABELS)]  # fmt: skip
    store.commit_chunk(run.id, 12_000, objects, clusters, {})
    assert store.counts()["cluster_members"] == 12_000
    store.finish_range(run.id, 0, {})
    store.finish_run(run.id, {})
    assert len(store.object_features([o.id for o in store.objects(start=0, end=300)])) == 3001


# -- FAISS indexes ---------------------------------------------------------------------------------------


def brute_force(store: Store, label: str, queries: np.ndarray, k: int) -> np.ndarray:
    clusters = store.clusters(label)
    centroids = np.stack([c.centroid for c in clusters])
    ids = np.array([c.id for c in clusters])
    distances = ((queries[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
    return ids[np.argsort(distances, axis=1, kind="stable")[:, :k]]


def index_files(store: Store) -> dict[str, Path]:
    return {p.suffix: p for p in index_dir(store).glob("mxn--car-*")}


def test_cluster_index_is_built_on_first_use_and_matches_brute_force(store_url, tmp_path):
    queries = np.random.default_rng(9).standard_normal((5, DIM)).astype(np.float32)
    with open_store(store_url, tmp_path) as store:
        for n in range(4):
            ingest(store, store.add_video(video_info(n)).id, seed=n)
        if store_url.startswith("sqlite"):
            assert index_dir(store) == tmp_path / "store.db.faiss"
        assert not index_dir(store).exists()
        index = store.cluster_index("car")
        assert len(index) == 8 and index.dim == DIM
        distances, ids = index.search(queries, 3)
        assert (ids == brute_force(store, "car", queries, 3)).all()
        assert np.all(np.diff(distances, axis=1) >= 0)
        assert store.cluster_index("car") is index  # unchanged SQL: the same object
        inode = index_files(store)[".faiss"].stat().st_ino
    with open_store(store_url, tmp_path) as store:  # another process: loads the saved file
        again = store.cluster_index("car")
        assert index_files(store)[".faiss"].stat().st_ino == inode  # not rewritten
        assert (again.search(queries, 3)[1] == ids).all()
        _, everything = again.search(queries, 100)
        assert everything.shape == (5, 8)  # k is capped at the number of clusters
        assert len(store.cluster_index("nothing")) == 0
        assert store.cluster_index("nothing").search(queries, 3)[1].shape == (5, 0)


@pytest.mark.parametrize("damage", ["delete", "garbage", "truncate", "manifest"])
def test_a_damaged_index_file_is_rebuilt(store_url, tmp_path, damage):
    queries = np.random.default_rng(1).standard_normal((4, DIM)).astype(np.float32)
    with open_store(store_url, tmp_path) as store:
        for n in range(3):
            ingest(store, store.add_video(video_info(n)).id, seed=n)
        expected = store.cluster_index("car").search(queries, 4)[1]
    files = index_files(store)
    if damage == "delete":
        files[".faiss"].unlink()
    elif damage == "garbage":
        files[".faiss"].write_bytes(b"not a faiss index" * 100)
    elif damage == "truncate":
        files[".faiss"].write_bytes(files[".faiss"].read_bytes()[:200])
    else:
        files[".json"].write_text("{")
    with open_store(store_url, tmp_path) as store:
        assert (store.cluster_index("car").search(queries, 4)[1] == expected).all()
        manifest = json.loads(files[".json"].read_text())
        assert manifest["ntotal"] == 6 and files[".faiss"].stat().st_size > 200


def test_finishing_a_run_makes_the_index_stale(store_url, tmp_path):
    queries = np.random.default_rng(2).standard_normal((3, DIM)).astype(np.float32)
    with open_store(store_url, tmp_path) as store:
        video = store.add_video(video_info())
        ingest(store, video.id, seed=1)
        before = store.cluster_index("car")
        assert len(before) == 2
        ingest(store, store.add_video(video_info(1)).id, seed=2)  # a new video
        grown = store.cluster_index("car")
        assert len(grown) == 4 and grown.fingerprint != before.fingerprint
        ingest(store, video.id, seed=3)  # re-ingest replaces the first video's clusters
        replaced = store.cluster_index("car")
        assert len(replaced) == 4
        assert set(replaced.search(queries, 4)[1].ravel()) == {c.id for c in store.clusters("car")}
        assert (replaced.search(queries, 2)[1] == brute_force(store, "car", queries, 2)).all()
        ingest(store, video.id, seed=4, finish=False)  # unfinished: no change
        assert store.cluster_index("car") is replaced
        assert (
            len(store.cluster_index("car", mode=None)) == 4 and len(store.cluster_index("car", "focus")) == 0
        )
    with open_store(store_url, tmp_path) as store:  # the saved file is current
        assert store.cluster_index("car").fingerprint == replaced.fingerprint


# -- IVF above the flat threshold (10^5 centroids are not built here: the threshold is lowered) -----------


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def clustered(rng: np.random.Generator, n: int, dim: int = 16, looks: int = 20) -> np.ndarray:
    """Unit centroids around a few directions, as one label's clusters lie (one per kind of look)."""
    directions = unit_rows(rng.standard_normal((looks, dim)))
    return unit_rows(directions[rng.integers(0, looks, n)] + 0.12 * rng.standard_normal((n, dim)))


def test_above_the_threshold_the_index_is_ivf_and_finds_what_flat_finds():
    rng = np.random.default_rng(3)
    centroids = clustered(rng, 2000)
    ids = np.arange(2000, dtype=np.int64) * 3 + 7  # cluster ids, not positions
    blobs = [c.tobytes() for c in centroids]
    flat = vectors.build("mxn", "car", "fp", ids, blobs)
    ivf = vectors.build("mxn", "car", "fp", ids, blobs, flat_max_centroids=1999)
    assert (flat.kind, flat.nprobe) == ("flat", None)
    assert (ivf.kind, ivf.nprobe, len(ivf)) == ("ivf", 14, 2000)  # 179 = round(4 sqrt(2000)) lists
    assert vectors.index_kind(2000, flat_max_centroids=2000) == "flat"  # at the threshold: still flat
    limit = vectors.FLAT_MAX_CENTROIDS
    assert (vectors.index_kind(limit), vectors.index_kind(limit + 1)) == ("flat", "ivf")
    # object-like queries, a little off a centroid: the nearest cluster is the one flat finds
    queries = unit_rows(centroids[rng.integers(0, 2000, 300)] + 0.03 * rng.standard_normal((300, 16)))
    assert (ivf.search(queries, 1)[1] == flat.search(queries, 1)[1]).mean() >= 0.99
    # more neighbours than the probed lists hold: still only real clusters, nearest first
    distances, found = ivf.search(queries[:3], 5000)
    assert (np.sort(found, axis=1) == ids).all() and (np.diff(distances, axis=1) >= 0).all()
    again = vectors.build("mxn", "car", "fp", ids, blobs, flat_max_centroids=1999)
    assert faiss.serialize_index(again.index).tobytes() == faiss.serialize_index(ivf.index).tobytes()


def test_an_ivf_index_is_reloaded_and_rebuilt_when_the_threshold_moves(store_url, tmp_path, monkeypatch):
    queries = np.random.default_rng(5).standard_normal((6, DIM)).astype(np.float32)
    default = vectors.FLAT_MAX_CENTROIDS
    monkeypatch.setattr(vectors, "FLAT_MAX_CENTROIDS", 5)  # 8 car clusters are "many"
    with open_store(store_url, tmp_path) as store:
        for n in range(4):
            ingest(store, store.add_video(video_info(n)).id, seed=n)
        index = store.cluster_index("car")
        assert (len(index), index.kind, index.nprobe) == (8, "ivf", 3)
        _, expected = index.search(queries, 3)
        _, every = index.search(queries, 100)
        assert (np.sort(every, axis=1) == sorted(c.id for c in store.clusters("car"))).all()
        manifest = json.loads(index_files(store)[".json"].read_text())
        assert (manifest["kind"], manifest["nprobe"]) == ("ivf", 3)
        assert manifest["format"] == vectors.FORMAT_VERSION
        inode = index_files(store)[".faiss"].stat().st_ino
    with open_store(store_url, tmp_path) as store:  # another process: loads the IVF file as it is
        again = store.cluster_index("car")
        assert (again.kind, again.nprobe) == ("ivf", 3)
        assert index_files(store)[".faiss"].stat().st_ino == inode  # not rewritten
        assert (again.search(queries, 3)[1] == expected).all()
    monkeypatch.setattr(vectors, "FLAT_MAX_CENTROIDS", default)
    with open_store(store_url, tmp_path) as store:  # the threshold now asks for flat: rebuilt, exact
        flat = store.cluster_index("car")
        assert flat.kind == "flat" and json.loads(index_files(store)[".json"].read_text())["kind"] == "flat"
        assert (flat.search(queries, 3)[1] == brute_force(store, "car", queries, 3)).all()
