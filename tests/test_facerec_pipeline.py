"""Labelling movies end to end: detection, Algorithm 3, SQL; resume, reopen, extend, bad videos, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mxn.cli import main
from mxn.cli.faces import movie_line
from mxn.datasets.movies import write_gallery, write_movie
from mxn.facerec.model import FaceMXN
from mxn.facerec.oracle import FaceEmbedder, Gallery, GalleryOracle
from mxn.facerec.pipeline import FaceConfig, MovieLabeller, label_movie, stored_faces
from mxn.media.video import VideoError
from mxn.storage.store import Store, StoreError

#: A stranger: in every movie, never in the gallery.
STRANGER = "lfw_6"


@pytest.fixture(scope="module")
def cast(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cast")
    write_gallery(root, leave_out=[STRANGER])
    return root


@pytest.fixture(scope="module")
def movies(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("movies")
    return [write_movie(root / f"part{k}.mp4", preset="tiny", seed=k)[0] for k in (1, 2)]


@pytest.fixture(scope="module")
def face_model() -> FaceMXN:
    return FaceMXN.default()


@pytest.fixture(scope="module")
def gallery(cast) -> Gallery:
    return Gallery.from_folder(cast, embedder=FaceEmbedder())


def _config(face_model, chunk_frames=6):
    # exit 1 decides close matches; the others never do (so every path of Algorithm 3 runs)
    thresholds = [None] * face_model.num_exits
    thresholds[1] = 0.2
    return FaceConfig(tuple(thresholds), chunk_frames=chunk_frames)


def _label(store: Store, videos, face_model, gallery, **options):
    """Label ``videos`` as one movie with a fresh gallery oracle and the tests' thresholds."""
    options.setdefault("progress", False)
    return label_movie(videos, store, face_model, GalleryOracle(gallery), _config(face_model), **options)


def _rows(store: Store, movie: str) -> list[tuple]:
    [record] = [m for m in store.face_movies() if m.name == movie]
    return [(f.video, f.frame, f.box, f.name, f.exit) for f in stored_faces(store, record.id)]


def test_movie_is_labelled_stored_and_answered_again_without_models(tmp_path, movies, face_model, gallery):
    with Store(f"sqlite:///{tmp_path / 'a.db'}") as store:
        oracle = GalleryOracle(gallery)
        result = label_movie(movies[:1], store, face_model, oracle, _config(face_model), progress=False)
        summary = result.summary()
        assert summary["faces"] > 10 and summary["movie"] == "part1"
        assert (
            summary["oracle_calls"] == oracle.calls < summary["faces"]
        )  # the exits spared some oracle calls
        assert sum(summary["hits_per_exit"]) + summary["oracle_calls"] == summary["faces"]
        assert summary["hits_per_exit"][0] == 0 and summary["hits_per_exit"][1] > 0
        assert STRANGER not in summary["people"] and "unknown-1" in summary["people"]
        first = _rows(store, "part1")
        # the same command again: already labelled, answered from SQL, no oracle call
        again_oracle = GalleryOracle(gallery)
        again = label_movie(movies[:1], store, face_model, again_oracle, _config(face_model), progress=False)
        assert again.videos[0]["skipped"] and again_oracle.calls == 0
        assert [(f.video, f.frame, f.box, f.name, f.exit) for f in again.faces] == first


def test_killed_run_resumes_to_exactly_the_uninterrupted_labels(
    store_url, tmp_path, movies, face_model, gallery
):
    with Store(f"sqlite:///{tmp_path / 'whole.db'}") as store:
        _label(store, movies[:1], face_model, gallery)
        whole = _rows(store, "part1")
    with Store(store_url) as store:
        labeller = MovieLabeller(store, "part1", face_model, GalleryOracle(gallery), _config(face_model))
        stopped = labeller.label_video(movies[0], progress=False, stop_after=10)
        assert stopped["stopped_at"] == 10
        assert _rows(store, "part1") == []  # a running run is not an answer yet
        [run] = store.face_runs(labeller.movie.id)
        assert run.status == "running" and run.next_frame == 6  # the first chunk committed, the second lost
        # a new process: fresh oracle and labeller, state restored from SQL
        result = _label(store, movies[:1], face_model, gallery)
        assert not result.videos[0].get("skipped")
        assert _rows(store, "part1") == whole
        assert store.counts()["face_rows"] == len(whole)  # nothing doubled


def test_reopened_movie_is_extended_with_its_databases_and_strangers(tmp_path, movies, face_model, gallery):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with Store(url) as store:
        _label(store, movies[:1], face_model, gallery, movie="film")
        [film] = store.face_movies()
        before = store.load_face_features(film.id)
    with Store(url) as store:
        oracle = GalleryOracle(gallery)
        result = label_movie(
            movies[1:], store, face_model, oracle, _config(face_model), movie="film", progress=False
        )
        assert {f.video for f in result.faces} == {"part1.mp4", "part2.mp4"}
        # the stranger keeps the name part 1 gave them: no new unknown-N
        assert {n for n in oracle.unknowns} == {n for n in before[-1][0]}
        after = store.load_face_features(film.id)
        assert set(after[1][0]) >= set(before[1][0])  # the databases grew from where they were
        assert after[1][2].sum() > before[1][2].sum()
    # the whole movie in one go labels the same faces in part 1
    with Store(f"sqlite:///{tmp_path / 'once.db'}") as store:
        _label(store, movies, face_model, gallery, movie="film")
        once = _rows(store, "film")
    with Store(url) as store:
        assert _rows(store, "film") == once


def test_other_face_model_cannot_extend_a_movie(tmp_path, movies, face_model, gallery):
    from mxn.facerec.model import face_spec
    from mxn.modelfile import MXNModel
    from mxn.network import build_network

    other = FaceMXN(MXNModel(build_network(face_spec(width=0.125, input_size=32, exits=(3, 5)), seed=1), []))
    with Store(f"sqlite:///{tmp_path / 'x.db'}") as store:
        _label(store, movies[:1], face_model, gallery)
        with pytest.raises(StoreError, match="another face model"):
            MovieLabeller(store, "part1", other, GalleryOracle(gallery), FaceConfig((None, None)))
    with pytest.raises(ValueError, match="thresholds for a face model with"):
        MovieLabeller(Store("sqlite://"), "m", face_model, GalleryOracle(gallery), FaceConfig((None,)))


def _grey_video(path: Path, frames: int = 12) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 120))
    for k in range(frames):
        writer.write(np.full((120, 160, 3), 90 + k, np.uint8))
    writer.release()
    return path


def _truncated(movie: Path, tmp_path: Path) -> Path:
    """``movie`` as an MJPG AVI cut in half: it opens and decodes, then stops short (after a commit).

    (A cut mp4 does not open at all: its index is at the end.)
    """
    capture = cv2.VideoCapture(str(movie))
    fps, size = capture.get(cv2.CAP_PROP_FPS), (int(capture.get(3)), int(capture.get(4)))
    whole = tmp_path / "whole.avi"
    writer = cv2.VideoWriter(str(whole), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    while (frame := capture.read())[0]:
        writer.write(frame[1])
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return cut


def test_no_faces_bad_videos_and_the_rest_still_label(tmp_path, movies, face_model, gallery):
    empty = _grey_video(tmp_path / "empty.mp4")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
    cut = _truncated(movies[1], tmp_path)
    errors = []
    with Store(f"sqlite:///{tmp_path / 'b.db'}") as store:
        result = label_movie(
            [empty, corrupt, tmp_path / "missing.mp4", movies[0], cut],
            store,
            face_model,
            GalleryOracle(gallery),
            _config(face_model),
            progress=False,
            on_error=lambda p, e: errors.append(p),
        )
        assert [v["video"] for v in result.videos] == ["empty.mp4", "part1.mp4"]
        assert result.videos[0]["frames"] == 12 and len(result.failed) == 3 and len(errors) == 3
        assert {f.video for f in result.faces} == {"part1.mp4"}
        # the bad files left no run and no row; the good ones keep theirs
        [movie] = store.face_movies()
        assert [r.status for r in store.face_runs(movie.id)] == ["done", "done"]
        assert store.counts()["face_rows"] == len(result.faces) > 0
    with pytest.raises(ValueError, match="at least one video"):
        label_movie([], Store("sqlite://"), face_model, GalleryOracle(gallery), _config(face_model))


def test_a_movie_whose_videos_all_fail_leaves_nothing(store_url, tmp_path, movies, face_model, gallery):
    cut = _truncated(movies[0], tmp_path)
    (tmp_path / "text.mp4").write_text("not a movie")
    with Store(store_url) as store:
        labeller = MovieLabeller(store, "cut", face_model, GalleryOracle(gallery), _config(face_model))
        commits, commit = [], store.commit_faces
        store.commit_faces = lambda run, rows, *rest: commits.append(len(rows)) or commit(run, rows, *rest)
        with pytest.raises(VideoError, match="truncated or damaged"):
            labeller.label_video(cut, progress=False)
        assert sum(commits) > 0  # faces were committed before it failed, and are gone with it
        assert labeller.movie is None
        result = _label(store, [cut, tmp_path / "text.mp4", tmp_path / "missing.mp4"], face_model, gallery)
        assert len(result.failed) == 3 and result.videos == [] and result.faces == []
        counts = store.counts()
        assert counts["face_movies"] == counts["face_runs"] == counts["face_rows"] == 0
        assert counts["face_features"] == 0


def test_cli_tune_then_label(tmp_path, cast, movies):
    runner = CliRunner()
    calib = tmp_path / "calib.mp4"
    done = runner.invoke(main, ["movie", "--preset", "tiny", "--seed", "5", "-o", str(calib)])
    assert done.exit_code == 0, done.output
    thresholds = tmp_path / "t.json"
    done = runner.invoke(
        main,
        [
            "tune",
            "faces",
            str(calib),
            "--gallery",
            str(cast),
            "--out",
            str(thresholds),
            "--plot",
            str(tmp_path / "a.png"),
            "--json",
            str(tmp_path / "tune.json"),
        ],
    )
    assert done.exit_code == 0, done.output
    tuned = json.loads((tmp_path / "tune.json").read_text())
    assert tuned["evaluation"]["accuracy"] >= 0.99 and len(tuned["alpha_sweep"]) > 3
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    out = tmp_path / "faces.csv"
    args = [
        "faces",
        str(movies[0]),
        "--gallery",
        str(cast),
        "--thresholds",
        str(thresholds),
        "--db",
        f"sqlite:///{tmp_path / 'f.db'}",
        "--out",
        str(out),
        "--srt",
        str(tmp_path / "f.srt"),
        "--annotate",
        str(tmp_path / "ann.mp4"),
        "--json",
        str(tmp_path / "s.json"),
        "--quiet",
    ]
    done = runner.invoke(main, args)
    assert done.exit_code == 0, done.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["faces"] == len(out.read_text().splitlines()) - 1 > 0
    assert "person" in done.output and "hit rate per exit" in done.output
    assert (tmp_path / "f.srt").read_text().startswith("1\n00:00:")
    assert cv2.VideoCapture(str(tmp_path / "ann.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 24
    # a missing video among good ones: reported, the rest labelled, exit code 1
    done = runner.invoke(main, [*args[:2], str(tmp_path / "nope.mp4"), *args[2:]])
    assert done.exit_code == 1 and "1 of 2 videos failed" in done.output
    # a corrupt thresholds file
    (tmp_path / "bad.json").write_text("{")
    done = runner.invoke(main, ["faces", str(movies[0]), "--thresholds", str(tmp_path / "bad.json")])
    assert done.exit_code == 1 and "not a face thresholds file" in done.output


def test_cli_train_faces_distils_a_face_model_from_a_movie(tmp_path, movies):
    out = tmp_path / "face.mxn"
    args = [
        "train",
        "faces",
        str(movies[0]),
        "--out",
        str(out),
        "--width",
        "0.125",
        "--epochs",
        "2",
        "--stride",
        "2",
        "--quiet",
        "--json",
        str(tmp_path / "r.json"),
    ]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    model = FaceMXN.from_file(out)
    assert model.num_exits == 4 and model.spec.width == 0.125
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["kind"] == "distillation" and report["train_crops"] + report["heldout_crops"] > 10
    done = CliRunner().invoke(main, ["train", "faces", str(tmp_path / "nothing.mp4"), "--out", str(out)])
    assert done.exit_code != 0 and "nothing.mp4" in done.output


def test_cli_faces_on_a_bad_file_says_one_line_and_stores_nothing(tmp_path, cast):
    """A text file named movie.mp4, with a gallery holding a broken photo: plain lines, exit 1, no figures."""
    bad = tmp_path / "movie.mp4"
    bad.write_text("this is not a movie")
    gallery = tmp_path / "cast"
    shutil.copytree(cast, gallery)
    person = sorted(p for p in gallery.iterdir() if p.is_dir())[0]
    (person / "broken.jpg").write_bytes(b"\xff\xd8 not a JPEG")
    url = f"sqlite:///{tmp_path / 'f.db'}"
    args = ["faces", str(bad), "--gallery", str(gallery), "--db", url, "--out", str(tmp_path / "o.json")]
    done = CliRunner().invoke(main, [*args, "--quiet"])
    assert done.exit_code == 1
    lines = done.output.splitlines()
    assert lines == [
        f"gallery {gallery}: skipped 1 photo(s): 1 unreadable ({person.name}/broken.jpg)",
        f"Error: {bad}: OpenCV cannot open it (corrupt, truncated, or an unsupported format)",
    ]
    assert not (tmp_path / "o.json").exists()
    with Store(url) as store:
        assert store.face_movies() == [] and store.counts()["face_runs"] == 0
    # a missing file is one line too
    done = CliRunner().invoke(main, ["faces", str(tmp_path / "gone.mp4"), "--db", url, "--quiet"])
    assert done.exit_code == 1 and done.output == f"Error: {tmp_path / 'gone.mp4'}: no such file\n"


def test_movie_line_gives_times_only_for_work_done():
    summary = {"movie": "m", "faces": 3, "people": ["a"], "oracle_calls": 1, "oracle_rate": 1 / 3,
               "seconds": 2.0, "detection_seconds": 1.5, "recognition_seconds": 0.25,
               "videos": [{"video": "a.mp4", "skipped": True}]}  # fmt: skip
    assert movie_line(summary) == (
        "movie 'm': 3 faces, 1 people; oracle calls 1 (33.3%); answered from the database, no model run"
    )
    summary["videos"].append({"video": "b.mp4"})
    assert movie_line(summary).endswith("; 2.0 s (detection 1.5 s, recognition 0.2 s)")


def test_cli_faces_writes_an_html_report(tmp_path, cast, movies):
    """The bundled face model's card carries thresholds, so no --thresholds file is needed."""
    report = tmp_path / "faces.html"
    args = ["faces", str(movies[0]), "--gallery", str(cast), "--db", f"sqlite:///{tmp_path / 'f.db'}"]
    done = CliRunner().invoke(main, [*args, "--html", str(report), "--quiet"])
    assert done.exit_code == 0, done.output
    assert f"wrote {report}" in done.output and "<html" in report.read_text()
