"""First contact and bad input: databases that are not mxn's, read-only storage, clashing ingests.

What a new user runs into first (issue "first contact"): a mistyped ``--db``
must never create a database, a read-only disk must still answer, a second
ingest of the same video must say in plain words what is going on, and the
command line must answer ``--help`` and argument errors without loading
TensorFlow.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect

from mxn.cli import main
from mxn.datasets.world.video import render_clip
from mxn.defaults import MODEL_DIR
from mxn.ingest.confidence import confident_mask, expected_share, unfamiliar_warning
from mxn.ingest.config import IngestConfig, describe_diff, settings_diff
from mxn.ingest.extraction import ExtractorConfig
from mxn.ingest.pipeline import IngestConflictError, VideoIngest, ingest_videos
from mxn.query.executor import QueryExecutor
from mxn.query.tuning import TuningError, collect_samples
from mxn.storage.store import Store, StoreError, database_url

ROOT = Path(__file__).resolve().parents[1]
SMALL = IngestConfig(chunk_frames=20, extractor=ExtractorConfig(warmup=10), cluster_threshold=0.3)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """4 s of the downtown junction at 320x180, 15 fps (60 frames: 3 chunks of SMALL)."""
    out = tmp_path_factory.mktemp("clips") / "downtown.mp4"
    render_clip(out, "downtown", seconds=4, seed=3, size=(320, 180), fps=15, progress=False)
    return out


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, clip, models) -> Path:
    """An SQLite file holding the clip's mxn index (tests copy it before changing anything)."""
    path = tmp_path_factory.mktemp("indexed") / "cams.db"
    with Store(database_url(path)) as store:
        [result] = ingest_videos([clip], store, models["ingest"], SMALL, progress=False)
        assert result.status == "done", result.error
    return path


def file_state(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


# -- which database a --db names ---------------------------------------------------------------------


def test_a_plain_path_is_an_sqlite_file_and_keeps_question_marks_and_percents(tmp_path, monkeypatch):
    assert database_url("cams.db") == "sqlite:///cams.db"
    assert database_url("postgresql://me@host/db") == "postgresql://me@host/db"
    odd = tmp_path / "cam?1%20.db"
    with Store(database_url(str(odd))) as store:  # the URL of a path reads back to the same path
        assert store.counts()["videos"] == 0
    assert odd.is_file() and [p.name for p in tmp_path.iterdir()] == ["cam?1%20.db"]
    with Store(odd, create=False) as again:  # a Path is a file, too
        assert again.counts()["videos"] == 0
    monkeypatch.setenv("MXN_DB", str(odd))
    assert database_url(None) == database_url(str(odd))
    with pytest.raises(StoreError, match="empty name"):
        database_url("  ")


def test_cli_db_takes_a_plain_file_path(indexed, tmp_path):
    copy = tmp_path / "my cams?.db"
    copy.write_bytes(indexed.read_bytes())
    result = CliRunner().invoke(main, ["query", "car", "--db", str(copy), "--mode", "focus", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "candidate clusters:" in result.output


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_stores_opened_at_once_on_a_new_database_all_find_one_schema(backend, tmp_path, request):
    """Two ingests starting together on a new database: one makes the schema, the other waits for it."""
    url = str(tmp_path / "new.db") if backend == "sqlite" else request.getfixturevalue("postgres_db")

    def open_and_count(_: int) -> int:
        with Store(url) as store:
            return store.counts()["videos"]

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(open_and_count, range(6))) == [0] * 6


# -- read-only jobs never make a store ----------------------------------------------------------------


@pytest.mark.parametrize("create", [False, True])
def test_a_database_of_another_program_is_refused_and_left_as_it_was(tmp_path, create):
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    before = file_state(foreign)
    with pytest.raises(
        StoreError, match=r"not an mxn database: it holds 1 table\(s\) of another program \(users\)"
    ):
        Store(foreign, create=create)
    assert file_state(foreign) == before


def test_read_only_opening_writes_nothing_whatever_it_finds(tmp_path):
    missing = tmp_path / "nodir" / "typo.db"
    with pytest.raises(StoreError, match=r"no mxn database at .*typo\.db \(no such file\)"):
        Store(missing, create=False)
    assert not missing.parent.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StoreError, match=r"not an mxn database: it is empty .*mxn ingest"):
        Store(empty, create=False)
    assert empty.stat().st_size == 0
    text = tmp_path / "notes.db"
    text.write_text("hello")
    with pytest.raises(StoreError, match="file is not a database"):
        Store(text, create=False)
    assert text.read_text() == "hello"
    with pytest.raises(StoreError, match=r"\(a folder\)"):
        Store(tmp_path, create=False)
    with Store(empty) as made:  # ingest and faces may make one
        assert made.counts()["videos"] == 0
    with Store(empty, create=False) as opened:
        assert opened.counts()["videos"] == 0


def test_read_only_opening_on_postgresql(postgres_db):
    with pytest.raises(StoreError, match="not an mxn database: it is empty"):
        Store(postgres_db, create=False)
    engine = create_engine(postgres_db)
    try:
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == []  # nothing was created
    finally:
        engine.dispose()
    with Store(postgres_db) as made:
        assert made.write_refusal() is None
    with Store(postgres_db, create=False) as opened:
        assert opened.counts()["videos"] == 0


@pytest.mark.parametrize(
    "command",
    [["query", "person"], ["tune", "query"], ["crops", "--out", "CROPS"]],
)
def test_read_only_commands_never_invent_a_database(tmp_path, command):
    db = tmp_path / "nodir" / "typo.db"
    args = [a.replace("CROPS", str(tmp_path / "crops")) for a in command]
    result = CliRunner().invoke(main, [*args, "--db", f"sqlite:///{db}"])
    assert result.exit_code == 1, result.output
    assert "no mxn database at" in result.output and "Traceback" not in result.output
    assert not db.parent.exists()


# -- read-only storage ----------------------------------------------------------------------------------


def read_only_url(path: Path) -> str:
    """SQLite's own read-only mode: every write is refused, as on a read-only disk."""
    return f"sqlite:///file:{path}?mode=ro&uri=true"


def test_a_read_only_database_answers_without_caching_and_says_so_once(indexed, tmp_path, models):
    copy = tmp_path / "ro.db"
    copy.write_bytes(indexed.read_bytes())
    before = copy.read_bytes()
    said: list[str] = []
    with Store(read_only_url(copy), create=False) as store:
        assert "readonly" in (store.write_refusal() or "")
        engine = QueryExecutor(store, models["gt"], models["query"], warn=said.append)
        first = engine.run("car")
        second = engine.run("car")
    assert first.hits > 0 and first.frame_keys == second.frame_keys
    assert second.stats.cached == 0 and second.stats.gt_calls == first.stats.gt_calls  # nothing was cached
    assert len(said) == 1 and "read-only" in said[0] and first.warnings == said
    assert copy.read_bytes() == before
    with Store(copy) as writable:
        assert writable.write_refusal() is None


def test_cli_query_on_a_read_only_database_gives_its_answer(indexed, tmp_path):
    copy = tmp_path / "ro.db"
    copy.write_bytes(indexed.read_bytes())
    out = tmp_path / "answer.json"
    result = CliRunner().invoke(
        main, ["query", "car", "--db", read_only_url(copy), "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "warning: the database is read-only" in result.output
    assert json.loads(out.read_text())["frames"] > 0


def test_a_read_only_postgresql_database_answers_without_caching(postgres_db, clip, models):
    with Store(postgres_db) as store:
        ingest_videos([clip], store, models["ingest"], SMALL, progress=False)
    name = postgres_db.rsplit("/", 1)[1]
    with psycopg.connect(postgres_db.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    with Store(postgres_db, create=False) as store:
        assert "read-only" in (store.write_refusal() or "")
        result = QueryExecutor(store, models["gt"], models["query"]).run("car")
    assert result.hits > 0 and any("read-only" in w for w in result.warnings)


# -- models that do not fit ---------------------------------------------------------------------------


def test_a_query_model_that_does_not_know_the_label_is_named(indexed, models, trained):
    digits = trained[0]
    with Store(indexed, create=False) as store:
        result = QueryExecutor(store, models["gt"], digits, use_cache=False).run("car")
    assert result.stats.gt_calls == result.stats.candidates > 0
    [warning] = result.warnings
    assert "does not know 'car'" in warning and "--qmodel" in warning


def test_tuning_with_models_of_other_labels_names_both_label_sets(indexed, models, trained):
    digits = trained[0]
    with Store(indexed, create=False) as store, pytest.raises(TuningError) as err:
        collect_samples(store, models["gt"], digits)
    message = str(err.value)
    assert "none of the index's labels is known to the query MXN" in message
    assert "the mxn index holds" in message and "car" in message and "knows 0, 1" in message


def test_ingest_says_when_its_model_is_sure_of_far_fewer_objects_than_on_its_own_data(tmp_path, clip, models):
    assert confident_mask([], []).shape == (0,)
    calibration = {"exits": [{"coverage": 0.5}, {"coverage": 0.25}, {"coverage": 0.0}]}
    assert expected_share(calibration, (0, 1, 2)) == 0.75 and expected_share(None, (0,)) is None
    assert unfamiliar_warning(70, 100, 0.75) is None
    assert unfamiliar_warning(2, 8, 0.75) is None  # 25% of 8 objects could be chance
    assert "sure of only 20% of the 100 objects" in unfamiliar_warning(20, 100, 0.75)
    assert "sure of only 0% of the 20 objects" in unfamiliar_warning(0, 20, 0.75)
    with Store(tmp_path / "fit.db") as store:
        [usual] = ingest_videos([clip], store, models["ingest"], SMALL, progress=False)
        assert usual.warnings == [] and usual.stats["confident"] > 0.5 * usual.stats["objects"]
    # the same video with thresholds no output reaches stands for footage the model is lost on
    lost = replace(
        models["ingest"], thresholds=[0.99999 if t is not None else None for t in models["ingest"].thresholds]
    )
    with Store(tmp_path / "lost.db") as store:
        [unsure] = ingest_videos([clip], store, lost, SMALL, progress=False)
    assert unsure.stats["confident"] < 0.1 * unsure.stats["objects"]
    assert len(unsure.warnings) == 1 and "this video may show classes" in unsure.warnings[0]
    assert unsure.to_dict()["warnings"] == unsure.warnings


# -- ingests that clash ---------------------------------------------------------------------------------


class StopError(Exception):
    """Stands for a kill after the first committed chunk."""


def stop(_frame: int) -> None:
    raise StopError


def test_a_killed_run_resumes_only_with_its_own_settings(tmp_path, clip, models):
    other = replace(SMALL, chunk_frames=30)
    assert (
        describe_diff(settings_diff(SMALL.index_key(), other.index_key())) == "--chunk-frames 20 (asked 30)"
    )
    with Store(tmp_path / "r.db") as store:
        with pytest.raises(StopError):
            VideoIngest(store, models["ingest"], SMALL, progress=False, on_chunk=stop).ingest(clip)
        before = store.counts()
        with pytest.raises(IngestConflictError, match=r"other settings: --chunk-frames 20 \(asked 30\)"):
            VideoIngest(store, models["ingest"], other, progress=False).ingest(clip)
        assert store.counts() == before  # refused before touching anything
        result = VideoIngest(store, models["ingest"], SMALL, progress=False).ingest(clip)
        assert result.resumed_from == 20
        forced_from = store.counts()
        with pytest.raises(StopError):
            VideoIngest(store, models["ingest"], SMALL, progress=False, on_chunk=stop).ingest(
                clip, force=True
            )
        restarted = VideoIngest(store, models["ingest"], other, progress=False).ingest(clip, force=True)
        assert restarted.status == "done" and restarted.resumed_from == 0
        assert [r.status for r in store.runs()] == ["done"] and store.runs()[0].config["chunk_frames"] == 30
        assert store.counts()["videos"] == forced_from["videos"]


def test_a_second_ingest_of_a_video_another_live_process_holds_is_refused_at_once(tmp_path, clip, models):
    with Store(tmp_path / "busy.db") as store:
        with pytest.raises(StopError):
            VideoIngest(store, models["ingest"], SMALL, progress=False, on_chunk=stop).ingest(clip)
        [run] = store.runs()
        holder = subprocess.Popen(["sleep", "60"])
        try:
            store.claim_range(run.id, 0, f"{socket.gethostname()}:{holder.pid}:abcd1234")
            before = store.counts()
            with pytest.raises(
                IngestConflictError, match=rf"another process \(pid {holder.pid}\) is indexing"
            ):
                VideoIngest(store, models["ingest"], SMALL, progress=False).ingest(clip)
            assert store.counts() == before and store.get_run(run.id).status == "running"
        finally:
            holder.kill()
            holder.wait()
        # once that process has ended, the same command resumes its work
        result = VideoIngest(store, models["ingest"], SMALL, progress=False).ingest(clip)
        assert result.status == "done" and result.resumed_from == 20


def test_an_ingest_whose_range_is_taken_over_stops_and_leaves_the_run_to_the_other(tmp_path, clip, models):
    with Store(tmp_path / "taken.db") as store:

        def taken(_frame: int) -> None:
            [run] = store.runs(status="running")
            store.claim_range(run.id, 0, "elsewhere:1:other")  # another machine's retry takes it

        result = ingest_videos([clip], store, models["ingest"], SMALL, progress=False)
        assert result[0].status == "done"  # (no takeover in the plain run)
        with pytest.raises(IngestConflictError, match=r"another process took over .* the index is safe"):
            VideoIngest(store, models["ingest"], SMALL, progress=False, on_chunk=taken).ingest(
                clip, force=True
            )
        runs = store.runs()
        assert [r.status for r in runs] == [
            "done",
            "running",
        ]  # the old index stays, the other attempt goes on


def test_a_skipped_video_says_its_figures_are_the_stored_runs_and_how_settings_differ(tmp_path, clip):
    db = tmp_path / "skip.db"
    base = [str(clip), "--db", str(db), "--chunk-frames", "20", "--warmup", "10", "--quiet"]
    first = CliRunner().invoke(main, ["ingest", *base])
    assert first.exit_code == 0, first.output
    header = first.output.splitlines()[0].split()
    assert header[-1] == "status"
    again = CliRunner().invoke(main, ["ingest", *base, "--topk", "3", "--json", str(tmp_path / "s.json")])
    assert again.exit_code == 0, again.output
    assert "already indexed (figures of run 1, OTHER SETTINGS; --force to redo)" in again.output
    assert "indexed by run 1 with other settings: --topk 2 (asked 3)" in again.output
    [video] = json.loads((tmp_path / "s.json").read_text())["videos"]
    assert video["status"] == "skipped" and video["stats_stored"] is True
    assert video["settings_differ"] == {"topk": {"stored": 2, "asked": 3}}
    same = CliRunner().invoke(main, ["ingest", *base])
    assert (
        "already indexed (figures of run 1; --force to redo)" in same.output
        and "other settings" not in same.output
    )


# -- start-up ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--help"], 0),
        (["ingest", "--help"], 0),
        (["tune", "query", "--help"], 0),
        (["info", str(MODEL_DIR / "ingest.mxn")], 0),
        (["info", "missing.mxn"], 1),
        (["query"], 2),
        (["query", "car", "--bogus"], 2),
        (["ingest", "x.mp4", "--workers", "0"], 2),
        (["query", "car", "--db", "sqlite:///nodir/typo.db"], 1),
    ],
)  # fmt: skip
def test_help_info_and_argument_errors_do_not_load_tensorflow(tmp_path, args, code):
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from mxn.cli import main\n"
        f"result = CliRunner().invoke(main, {args!r})\n"
        "print(result.exit_code, 'tensorflow' in sys.modules)\n"
        "print(result.output)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MXN_DB"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    status = proc.stdout.splitlines()[0]
    assert status == f"{code} False", proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout


# -- videos that are not what they claim ------------------------------------------------------------------


def test_a_still_image_or_one_frame_and_a_header_announcing_too_many_frames_fail_clearly(tmp_path, models):
    frame = np.full((64, 96, 3), 120, np.uint8)
    png = tmp_path / "photo.mp4"
    png.write_bytes(cv2.imencode(".png", frame)[1].tobytes())
    one = tmp_path / "one.avi"
    writer = cv2.VideoWriter(str(one), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    writer.write(frame)
    writer.release()
    avi = tmp_path / "forged.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for _ in range(30):
        writer.write(frame)
    writer.release()
    data = bytearray(avi.read_bytes())
    for chunk, offset in ((b"avih", 8 + 16), (b"strh", 8 + 32)):  # dwTotalFrames, dwLength
        struct.pack_into("<I", data, data.index(chunk) + offset, 0x7FFFFFFF)
    avi.write_bytes(bytes(data))
    db = tmp_path / "never.db"
    with Store(db) as store:
        results = ingest_videos([png, one, avi], store, models["ingest"], SMALL, progress=False)
        assert [r.status for r in results] == ["failed"] * 3
        assert "a single frame (an image?)" in results[0].error and "a single frame" in results[1].error
        assert "announces 2147483647 frames, more than its" in results[2].error
        assert not any(store.counts().values())
