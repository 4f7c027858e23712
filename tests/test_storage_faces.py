"""Face labelling in SQL (schema version 3) on SQLite and on a real PostgreSQL.

A labelled movie is reopened and extended: its per-exit face databases come
back bit for bit and in order, a killed run resumes from its last commit
without duplicating a row, and a version-2 (or 1) database gains the tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from mxn.storage.records import ORACLE_EXIT, FaceFeatures, FaceRow, VideoInfo
from mxn.storage.schema import SCHEMA_VERSION
from mxn.storage.store import Store, StoreError

DIMS = {0: 16, 1: 32, 2: 64, ORACLE_EXIT: 128}  # exit -> feature size (-1: the oracle's unknowns)
SHA = "a" * 64
FACE_TABLES = ("face_features", "face_rows", "face_runs", "face_movies")  # children first


def video_info(n: int = 0) -> VideoInfo:
    return VideoInfo(f"v{n}.mp4", f"/videos/v{n}.mp4", f"{n:064x}", 25.0, 640, 360, 1000, 40.0)


def open_store(url: str, tmp_path: Path) -> Store:
    return Store(url) if url.startswith("sqlite") else Store(url, index_dir=tmp_path / "faiss")


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    with open_store(store_url, tmp_path) as s:
        yield s


def make_rows(frames: range, per_frame: int = 2) -> list[FaceRow]:
    """Faces at time frame/25 s; every third one named by the oracle (exit None), the rest by an exit."""
    rows = []
    for frame in frames:
        for k in range(per_frame):
            n = frame * per_frame + k
            by_oracle = n % 3 == 0
            rows.append(
                FaceRow(
                    frame=frame,
                    time=frame / 25,
                    box=(n, n + 1, n + 20, n + 30),
                    name=f"person-{n % 4}" if n % 5 else f"unknown-{n % 2 + 1}",
                    exit=None if by_oracle else n % 3,
                    distance=None if by_oracle else 0.1 + n / 997,  # not "round": tests exactness
                    oracle_name=f"person-{n % 4}" if by_oracle or n % 7 == 0 else None,
                )
            )
    return rows


def make_features(rng: np.random.Generator, labels: list[str]) -> FaceFeatures:
    """Every exit's complete database over ``labels`` (order as given), random float32 vectors."""
    return {
        exit_: (
            list(labels),
            rng.standard_normal((len(labels), dim)).astype(np.float32),
            rng.integers(1, 50, len(labels)).astype(np.int64),
        )
        for exit_, dim in DIMS.items()
    }


def assert_features_equal(got, want) -> None:
    assert sorted(got) == sorted(want)
    for exit_, (labels, vectors, counts) in want.items():
        g_labels, g_vectors, g_counts = got[exit_]
        assert g_labels == labels  # first-seen order, not sorted
        assert g_vectors.dtype == np.float32 and g_vectors.shape == vectors.shape
        assert np.array_equal(g_vectors.view(np.uint32), vectors.view(np.uint32))  # bit for bit
        assert g_counts.dtype == np.int64 and g_counts.tolist() == counts.tolist()


def row_key(r) -> tuple:
    return (r.frame, r.time, r.box, r.name, r.exit, r.distance, r.oracle_name)


# -- movies ----------------------------------------------------------------------------------------------


def test_face_movie_is_got_or_created_and_refuses_another_model(store):
    movie = store.face_movie("casablanca", SHA, {"alpha": 1 / 15, "exits": [0, 1, 2]})
    assert movie.name == "casablanca" and movie.model_sha == SHA and movie.stats == {}
    assert movie.config == {"alpha": 1 / 15, "exits": [0, 1, 2]}
    again = store.face_movie("casablanca", SHA, {"alpha": 0.5})
    assert again == movie  # the stored config is kept
    other = store.face_movie("metropolis", SHA, {})
    assert [m.name for m in store.face_movies()] == ["casablanca", "metropolis"]
    assert other.id != movie.id
    with pytest.raises(StoreError, match=r"labelled with another face model.*another --movie name"):
        store.face_movie("casablanca", "b" * 64, {})
    with pytest.raises(StoreError, match="no face movie named 'nosferatu'"):
        store.face_movie("nosferatu", SHA, {}, create=False)
    assert store.counts()["face_movies"] == 2


# -- runs ------------------------------------------------------------------------------------------------


def test_two_chunks_round_trip_rows_and_features(store):
    rng = np.random.default_rng(0)
    video = store.add_video(video_info())
    movie = store.face_movie("m", SHA, {})
    run = store.start_face_run(movie.id, video.id)
    assert (run.status, run.next_frame, run.movie_id, run.video_id) == ("running", 0, movie.id, video.id)

    first, second = make_rows(range(0, 10)), make_rows(range(10, 20))
    f1 = make_features(rng, ["person-1", "person-0", "unknown-1"])
    store.commit_faces(run.id, first, 10, f1, stats={"faces": len(first)})
    assert store.get_face_run(run.id).next_frame == 10
    assert store.face_rows(movie.id) == []  # running runs are not the labelling yet
    assert len(store.face_rows(movie.id, include_running=True)) == len(first)
    assert_features_equal(store.load_face_features(movie.id), f1)

    # the second chunk's databases grew: a new label appended, the old order kept
    f2 = make_features(rng, ["person-1", "person-0", "unknown-1", "person-3"])
    store.commit_faces(run.id, second, 20, f2)
    done = store.finish_face_run(run.id, {"faces": 40}, movie_stats={"videos": 1})
    assert done.status == "done" and done.stats == {"faces": 40} and done.next_frame == 20
    assert store.face_movies()[0].stats == {"videos": 1}

    rows = store.face_rows(movie.id)
    assert [r.seq for r in rows] == list(range(40))  # seq numbers continue across chunks
    assert [row_key(r) for r in rows] == [row_key(r) for r in first + second]
    assert {r.run_id for r in rows} == {run.id} and {r.video_id for r in rows} == {video.id}
    assert store.face_rows(movie.id, video.id) == rows
    assert_features_equal(store.load_face_features(movie.id), f2)
    counts = store.counts()
    assert (counts["face_movies"], counts["face_runs"], counts["face_rows"]) == (1, 1, 40)
    assert counts["face_features"] == 4 * len(DIMS)


def test_commit_replaces_only_the_exits_given(store):
    rng = np.random.default_rng(1)
    video = store.add_video(video_info())
    movie = store.face_movie("m", SHA, {})
    run = store.start_face_run(movie.id, video.id)
    full = make_features(rng, ["a", "b"])
    store.commit_faces(run.id, [], 5, full)
    only_oracle = {ORACLE_EXIT: make_features(rng, ["unknown-1", "unknown-2", "unknown-3"])[ORACLE_EXIT]}
    store.commit_faces(run.id, [], 9, only_oracle)
    assert_features_equal(store.load_face_features(movie.id), full | only_oracle)
    store.commit_faces(run.id, [], 12, {0: ([], np.zeros((0, 16), np.float32), np.zeros(0, np.int64))})
    assert 0 not in store.load_face_features(movie.id)  # an emptied exit has no rows
    assert store.get_face_run(run.id).next_frame == 12


def test_a_bad_commit_writes_nothing(store):
    rng = np.random.default_rng(2)
    video = store.add_video(video_info())
    movie = store.face_movie("m", SHA, {})
    run = store.start_face_run(movie.id, video.id)
    good = make_features(rng, ["a", "b"])
    store.commit_faces(run.id, make_rows(range(3)), 3, good)
    before = store.counts()
    labels, vectors, counts = make_features(rng, ["a", "b", "c"])[1]
    bad = {0: good[0], 1: (labels, vectors[:2], counts)}  # three labels, two vectors
    with pytest.raises(StoreError, match=r"exit 1.*do not describe the same rows"):
        store.commit_faces(run.id, make_rows(range(3, 6)), 6, bad)
    with pytest.raises(StoreError, match="labels are not unique"):
        store.commit_faces(run.id, make_rows(range(3, 6)), 6, {1: (["a", "a"], vectors[:2], counts[:2])})
    assert store.counts() == before
    assert store.get_face_run(run.id).next_frame == 3
    assert_features_equal(store.load_face_features(movie.id), good)


def test_a_killed_run_resumes_from_its_last_commit_without_duplicates(store_url, tmp_path):
    rng = np.random.default_rng(3)
    first, second = make_rows(range(0, 8)), make_rows(range(8, 15))
    f1, f2 = make_features(rng, ["x", "y"]), make_features(rng, ["y", "x", "z"])
    with open_store(store_url, tmp_path) as store:
        video = store.add_video(video_info())
        movie = store.face_movie("m", SHA, {})
        run = store.start_face_run(movie.id, video.id)
        store.commit_faces(run.id, first, 8, f1)
    # the process died here: no finish, no fail

    with open_store(store_url, tmp_path) as store:
        movie = store.face_movie("m", SHA, {})
        resumed = store.start_face_run(movie.id, video.id)
        assert resumed.id == run.id and resumed.status == "running" and resumed.next_frame == 8
        assert_features_equal(store.load_face_features(movie.id), f1)
        # a commit retried after it had in fact gone through (no ack) stores nothing twice
        store.commit_faces(resumed.id, first, 8, f1)
        assert store.counts()["face_rows"] == len(first)
        store.commit_faces(resumed.id, second, 15, f2)
        store.finish_face_run(resumed.id, {})
        rows = store.face_rows(movie.id)
        assert [r.seq for r in rows] == list(range(len(first) + len(second)))
        assert [row_key(r) for r in rows] == [row_key(r) for r in first + second]
        assert_features_equal(store.load_face_features(movie.id), f2)
        assert store.counts()["face_runs"] == 1


def test_a_failed_run_keeps_its_error_and_is_resumed(store):
    video = store.add_video(video_info())
    movie = store.face_movie("m", SHA, {})
    run = store.start_face_run(movie.id, video.id)
    store.commit_faces(run.id, make_rows(range(4)), 4, {})
    store.fail_face_run(run.id, "decoder died")
    failed = store.get_face_run(run.id)
    assert failed.status == "failed" and failed.error == "decoder died"
    assert store.face_rows(movie.id, include_running=True) == []  # failed rows are never shown
    with pytest.raises(StoreError, match=f"cannot commit faces to face run {run.id}: it is failed"):
        store.commit_faces(run.id, make_rows(range(4, 6)), 6, {})
    resumed = store.start_face_run(movie.id, video.id)
    assert (resumed.id, resumed.status, resumed.next_frame, resumed.error) == (run.id, "running", 4, None)
    with pytest.raises(StoreError, match="no face run 999"):
        store.finish_face_run(999, {})


def test_a_done_video_is_refused_unless_forced_and_then_replaced_on_finish(store):
    rng = np.random.default_rng(4)
    v0, v1 = store.add_video(video_info(0)), store.add_video(video_info(1))
    movie = store.face_movie("m", SHA, {})
    old = store.start_face_run(movie.id, v0.id)
    store.commit_faces(old.id, make_rows(range(5)), 5, make_features(rng, ["a"]))
    store.finish_face_run(old.id, {})
    other = store.start_face_run(movie.id, v1.id)  # another video of the movie extends it
    store.commit_faces(other.id, make_rows(range(3)), 3, {})
    store.finish_face_run(other.id, {})

    with pytest.raises(StoreError, match=r"already labelled in face movie 'm'.*--force"):
        store.start_face_run(movie.id, v0.id)
    new = store.start_face_run(movie.id, v0.id, force=True)
    assert new.id != old.id and new.next_frame == 0
    store.commit_faces(new.id, make_rows(range(7), per_frame=1), 7, {})
    assert len(store.face_rows(movie.id, v0.id)) == 10  # the old labelling stays until the new one is done
    assert store.start_face_run(movie.id, v0.id).id == new.id  # the unfinished forced run resumes
    store.finish_face_run(new.id, {})
    rows = store.face_rows(movie.id, v0.id)
    assert len(rows) == 7 and {r.run_id for r in rows} == {new.id}
    assert len(store.face_rows(movie.id, v1.id)) == 6  # the other video is untouched
    assert [r.video_id for r in store.face_rows(movie.id)] == [v0.id] * 7 + [v1.id] * 6
    assert [r.id for r in store.face_runs(movie.id)] == [other.id, new.id]
    assert store.counts()["face_runs"] == 2 and store.counts()["face_rows"] == 13


def test_unknown_movie_or_video_is_a_store_error(store):
    video = store.add_video(video_info())
    movie = store.face_movie("m", SHA, {})
    with pytest.raises(StoreError, match="no face movie 42"):
        store.start_face_run(42, video.id)
    with pytest.raises(StoreError, match="no video 42"):
        store.start_face_run(movie.id, 42)


# -- schema ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("old_version", [2, 1])
def test_an_older_database_gains_the_face_tables_in_place(store_url, tmp_path, old_version):
    with open_store(store_url, tmp_path) as store:
        video = store.add_video(video_info())
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:  # what version 2 looked like: no face tables (version 1: no verdicts either)
        for table in FACE_TABLES + (("query_verdicts",) if old_version == 1 else ()):
            conn.execute(sa.text(f"DROP TABLE {table}"))
        conn.execute(sa.text(f"UPDATE schema_info SET version = {old_version}"))
    with engine.connect() as conn:
        assert not set(FACE_TABLES) & set(sa.inspect(conn).get_table_names())
    try:
        with open_store(store_url, tmp_path) as store:
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT version FROM schema_info")).scalar() == SCHEMA_VERSION
                indexes = {i["name"] for i in sa.inspect(conn).get_indexes("face_rows")}
                assert {"ix_face_rows_run_time", "ix_face_rows_name"} <= indexes
            assert store.videos() == [video]
            movie = store.face_movie("m", SHA, {})
            run = store.start_face_run(movie.id, video.id)
            store.commit_faces(run.id, make_rows(range(2)), 2, make_features(np.random.default_rng(5), ["a"]))
            store.finish_face_run(run.id, {})
            assert len(store.face_rows(movie.id)) == 4
    finally:
        engine.dispose()
