"""The Python API (mxn.api): the example scripts end to end, and the clear errors of bad arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mxn import api
from mxn.api import OptionError

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, *args: str) -> str:
    """Run ``scripts/NAME`` as a user would; its stdout (a failure shows everything it printed)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# -- the package ----------------------------------------------------------------------------------------


#: What ``import mxn.api, mxn.cli`` may load of the stages and the data sets: their settings, which import
#: nothing heavy (the defaults the functions and options read when they are defined; a few milliseconds).
SETTINGS = [
    "mxn.datasets",
    "mxn.datasets.movies",
    "mxn.datasets.movies.settings",
    "mxn.datasets.world",
    "mxn.datasets.world.presets",
    "mxn.datasets.world.settings",
    "mxn.facerec",
    "mxn.facerec.settings",
    "mxn.ingest",
    "mxn.ingest.config",
    "mxn.query",
    "mxn.query.settings",
]


def test_import_is_cheap_and_the_jobs_are_re_exported():
    """``import mxn.api`` and ``mxn --help`` load no TensorFlow, OpenCV, NumPy, dlib, scikit-image or SQL,
    and of the stages and the data sets only their settings; ``mxn.api`` names every job."""
    heavy = "('tensorflow', 'keras', 'cv2', 'numpy', 'dlib', 'skimage', 'sqlalchemy')"
    stages = "('mxn.ingest', 'mxn.query', 'mxn.facerec', 'mxn.storage', 'mxn.datasets')"
    code = (
        "import sys, mxn, mxn.api, mxn.cli; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy} or m.startswith({stages})))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(SETTINGS)
    for name in ("train", "ingest", "query", "tune_query", "label_faces", "tune_faces", "make_movie"):
        assert name in api.__all__ and callable(getattr(api, name))
        assert getattr(api, name).__doc__, f"mxn.api.{name} has no docstring"
    # ``mxn.ingest`` and ``mxn.query`` are the stages' packages, not the jobs
    import mxn.ingest
    import mxn.query

    assert not callable(mxn.ingest) and not callable(mxn.query)


def test_option_errors_name_the_argument_for_each_caller():
    err = OptionError(
        "give {workers} (a local cluster) or {scheduler} (an existing one), not both",
        mentions=("workers", "scheduler"),
    )
    assert str(err) == "give workers (a local cluster) or scheduler (an existing one), not both"
    assert (
        err.text(lambda n: f"--{n}")
        == "give --workers (a local cluster) or --scheduler (an existing one), not both"
    )
    bad = OptionError("must be >= 1, got 0", "workers")
    assert isinstance(bad, ValueError) and str(bad) == "workers: must be >= 1, got 0"
    braces = OptionError("out/{x}.txt: expected .json or .csv", "out")  # a value's braces stay as they are
    assert braces.text(lambda n: f"--{n}") == "out/{x}.txt: expected .json or .csv"
    assert api.parse_time("1:30") == 90 and api.parse_time(12) == 12.0 and api.parse_time(None) is None


# -- ingest and query -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def query_example(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("example-query")
    return out, run_example("example_ingest_and_query.py", "--out", str(out), "--seconds", "4")


def test_ingest_and_query_example(query_example):
    out, printed = query_example
    assert "ingest (mxn): done" in printed and "ingest (gt-all): done" in printed
    assert "query 'car':" in printed and "against the gt-all index: precision" in printed
    answer = json.loads((out / "car.json").read_text())
    assert answer["label"] == "car" and answer["mode"] == "mxn"
    assert (out / "car.png").read_bytes()[:4] == b"\x89PNG"
    assert "<html" in (out / "car.html").read_text()


def test_query_again_answers_from_the_cache_and_bad_queries_say_what_to_do(query_example):
    from mxn.query.executor import QueryError

    db = query_example[0] / "index.db"
    again = api.query("car", db=db, progress=False)
    assert again.stats.gt_calls == 0 and again.stats.mxn_calls == 0  # every verdict was cached
    assert again.accuracy is not None
    with pytest.raises(QueryError, match=r"unknown label 'zebra'; the index knows: .*car"):
        api.query("zebra", db=db, progress=False)
    with pytest.raises(QueryError, match=r"no video 'nope\.mp4' in the index; it has: downtown\.mp4"):
        api.query("car", video="nope.mp4", db=db, progress=False)
    # bad arguments fail before any model loads
    with pytest.raises(OptionError, match="mode: unknown mode 'bogus'; choose one of mxn, focus, all"):
        api.query("car", db=db, mode="bogus")
    with pytest.raises(OptionError, match="start: expected seconds or"):
        api.query("car", db=db, start="ten")
    with pytest.raises(OptionError, match=r"out: car\.txt: expected \.json or \.csv"):
        api.query("car", db=db, out="car.txt")


def test_ingest_errors(tmp_path):
    from mxn.ingest.config import ConfigError

    db = tmp_path / "x.db"
    with pytest.raises(ConfigError, match="unknown mode 'bogus'; choose one of mxn, focus, gt-all"):
        api.ingest("clip.mp4", db=db, mode="bogus")
    with pytest.raises(OptionError, match=r"give workers .* or scheduler .*, not both"):
        api.ingest("clip.mp4", db=db, workers=1, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(OptionError, match="workers: must be >= 1, got 0"):
        api.ingest("clip.mp4", db=db, workers=0)
    with pytest.raises(OptionError, match="exits: expected exit numbers such as 0,2,4"):
        api.ingest("clip.mp4", db=db, exits="0,a")
    with pytest.raises(OptionError, match="videos: give at least one video"):
        api.ingest([], db=db)
    # a missing video is a failed result, not an exception: the other videos of a call still ingest
    [missing] = api.ingest(tmp_path / "missing.mp4", db=db, progress=False)
    assert missing.status == "failed" and "no such file" in missing.error
    with pytest.raises(OptionError, match="size: expected WIDTHxHEIGHT, got 'big'"):
        api.render_traffic_video(tmp_path / "v.mp4", size="big")


# -- faces ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces_example(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("example-faces")
    return out, run_example("example_faces.py", "--out", str(out))


def test_faces_example(faces_example):
    out, printed = faces_example
    assert "tuned on" in printed and "labelled" in printed and "unknown-1" in printed
    rows = json.loads((out / "faces.json").read_text())
    assert rows["faces"] and rows["summary"]["movie"] == "movie"
    assert (out / "faces.srt").read_text().startswith("1\n00:00:")
    assert json.loads((out / "face-thresholds.json").read_text())["format"] == "mxn-face-thresholds"
    assert "<html" in (out / "faces.html").read_text()


def test_label_faces_again_answers_from_the_database(faces_example):
    from mxn.facerec.pipeline import LabelledMovie, MovieResult

    out = faces_example[0]
    result = api.label_faces(
        out / "movie.mp4", gallery=out / "cast", thresholds=out / "face-thresholds.json", db=out / "faces.db",
        progress=False,
    )  # fmt: skip
    assert isinstance(result, MovieResult) and isinstance(result, LabelledMovie)
    assert all(v.get("skipped") for v in result.videos)  # nothing labelled twice
    summary = result.to_dict()
    assert summary["db"] == f"sqlite:///{out / 'faces.db'}" and summary["config"]["detector"] == "hog"
    assert summary["faces"] == len(json.loads((out / "faces.json").read_text())["faces"])
    assert set(summary["screen_time_s"]) == set(summary["people"])


def test_face_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.mp4: no such video"):
        api.tune_faces(tmp_path / "nope.mp4")
    with pytest.raises(OptionError, match="identities takes one class-per-folder face folder"):
        api.train_faces([tmp_path, tmp_path], tmp_path / "face.mxn", identities=True)
    with pytest.raises(OptionError, match="preset: unknown movie preset 'huge'"):
        api.make_movie(tmp_path / "m.mp4", preset="huge")


# -- training -------------------------------------------------------------------------------------------


def test_train_example(tmp_path):
    printed = run_example("example_train.py", "--out", str(tmp_path), "--seconds", "30", "--epochs", "2")
    assert "calibrated for 90% precision" in printed and "exit 2: test accuracy" in printed
    assert (tmp_path / "model.mxn").is_file()
    manifest = json.loads((tmp_path / "crops" / "manifest.json").read_text())
    assert set(manifest["counts"]) == {"train", "val", "calibration", "test"}
    card = api.evaluate(tmp_path / "model.mxn", tmp_path / "crops")
    assert len(card.exit_accuracy) == 3


def test_train_errors(tmp_path):
    from mxn.spec import SpecError

    with pytest.raises(FileNotFoundError, match="no such data folder"):
        api.train(tmp_path / "nope", tmp_path / "m.mxn")
    with pytest.raises(OptionError, match="exits: expected exit numbers"):
        api.train(tmp_path, tmp_path / "m.mxn", exits="1,x")
    with pytest.raises(SpecError, match="backbone"):
        api.train(tmp_path, tmp_path / "m.mxn", backbone="vgg")
