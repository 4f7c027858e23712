"""Face rows out: timelines, subtitles, row files, annotated video; tuning replays on hand-made embeddings."""

import csv
import json
import unicodedata

import cv2
import numpy as np
import pytest

from mxn.facerec.outputs import (
    LabelledFace,
    annotate_video,
    draw_faces,
    person_timeline,
    screen_time,
    subtitle_cues,
    summarize,
    write_faces,
    write_srt,
)
from mxn.facerec.tuning import (
    FaceSample,
    FaceThresholds,
    ThresholdsError,
    closest_wrong_approach,
    plot_alpha_sweep,
    replay,
    sweep_alpha,
    truth_accuracy,
    tune_thresholds,
)
from mxn.media.text import covered, draw_text, drawable, label_size, text_mask


def _face(frame, name, exit=0, video="a.mp4", fps=10.0):
    return LabelledFace(
        video, frame, frame / fps, (10, 10, 40, 40), name, exit, None if exit is None else 0.2
    )


def test_timeline_merges_close_appearances_per_person_and_video():
    faces = [_face(f, "alice") for f in (0, 1, 2, 30, 31)] + [_face(5, "bob", exit=None)]
    faces.append(_face(3, "alice", video="b.mp4"))
    timeline = person_timeline(faces, max_gap=1.0)
    assert timeline == {
        "alice": {"a.mp4": [(0.0, 0.2), (3.0, 3.1)], "b.mp4": [(0.3, 0.3)]},
        "bob": {"a.mp4": [(0.5, 0.5)]},
    }
    assert screen_time(timeline)["alice"] == pytest.approx(0.3)
    summary = summarize(faces, num_exits=2)
    assert summary["faces"] == 7 and summary["oracle_calls"] == 1 and summary["hits_per_exit"] == [6, 0]
    assert summary["people"] == ["alice", "bob"]


def test_subtitles_name_who_is_on_screen(tmp_path):
    faces = [_face(0, "alice"), _face(1, "alice"), _face(1, "bob"), _face(2, "bob"), _face(9, "bob")]
    cues = subtitle_cues(faces, frame_seconds=0.1)
    assert [c[2] for c in cues] == ["alice", "alice, bob", "bob", "bob"]
    assert cues[0][:2] == pytest.approx((0.0, 0.1))
    text = write_srt(cues, tmp_path / "m.srt").read_text()
    assert text.startswith("1\n00:00:00,000 --> 00:00:00,100\nalice\n")
    assert "4\n00:00:00,900 --> 00:00:01,000\nbob" in text
    with pytest.raises(ValueError, match="frame_seconds"):
        subtitle_cues(faces, 0)


def test_row_files_json_and_csv(tmp_path):
    faces = [_face(0, "alice"), _face(4, "unknown-1", exit=None)]
    data = json.loads(write_faces(faces, tmp_path / "f.json", extra={"summary": {"faces": 2}}).read_text())
    assert data["summary"] == {"faces": 2} and len(data["faces"]) == 2
    assert data["faces"][1]["decided_by"] == "oracle" and data["timeline"]["alice"]["a.mp4"] == [[0.0, 0.0]]
    rows = list(csv.DictReader(write_faces(faces, tmp_path / "f.csv").open()))
    assert rows[0]["name"] == "alice" and rows[0]["decided_by"] == "exit 0" and rows[1]["distance"] == ""
    with pytest.raises(ValueError, match=r"json or \.csv"):
        write_faces(faces, tmp_path / "f.txt")
    assert not list(tmp_path.glob(".*.tmp"))


def test_annotated_video_draws_boxes_on_the_labelled_frames(tmp_path):
    src = tmp_path / "src.mp4"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 64))
    for _ in range(6):
        writer.write(np.full((64, 96, 3), 128, np.uint8))
    writer.release()
    out = annotate_video(src, [_face(2, "alice")], tmp_path / "out.mp4", hold_frames=2)
    capture = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 6
    changed = [int(np.abs(f.astype(int) - 128).max() > 60) for f in frames]
    assert changed == [0, 0, 1, 1, 0, 0]


# -- names in any script ---------------------------------------------------------------------------------


FULL_WIDTH_ALICE = "\uff21\uff4c\uff49\uff43\uff45"


def _drawn(name: str, decided_by_exit: int | None = 1) -> np.ndarray:
    """A grey 640x360 frame with one labelled face: what ``annotate_video`` writes for it."""
    image = np.full((360, 640, 3), 128, np.uint8)
    face = LabelledFace("a.mp4", 0, 0.0, (200, 100, 300, 220), name, decided_by_exit, 0.2)
    draw_faces(image, [face], {})
    return image


@pytest.mark.parametrize(
    ("name", "as_putText_drew_it"),
    [("Zoë", "Zo??"), ("Łukasz", "??ukasz"), ("Ñandú", "??and??"), ("Дмитрий", "??????????????")],
)
def test_annotated_names_keep_their_letters(name, as_putText_drew_it):
    """OpenCV's putText drew each UTF-8 byte of a non-ASCII letter as '?'."""
    drawn = _drawn(name)
    assert not np.array_equal(drawn, _drawn(as_putText_drew_it))
    assert not np.array_equal(drawn, _drawn(name.encode("ascii", "replace").decode()))
    assert np.array_equal(drawn, _drawn(unicodedata.normalize("NFD", name)))  # however it was typed
    # the label's box, in the person's colour, sits on top of the face's box as before
    assert (drawn[81:100, 200] == (230, 25, 75)).all() and (drawn[80, 200:300] == 128).all()


def test_a_script_the_font_lacks_is_written_as_code_points_never_as_question_marks_or_boxes():
    assert drawable("佐藤") == "[U+4F50 U+85E4]"
    assert drawable("Zoë 佐藤 (exit 1)") == "Zoë [U+4F50 U+85E4] (exit 1)"
    assert drawable(FULL_WIDTH_ALICE) == "Alice"  # full-width letters: their compatibility form
    assert drawable("a\nb") == "a b"  # one line
    for name in ("佐藤", "Zoë", "Łukasz", "🙂", FULL_WIDTH_ALICE, "مرحبا"):
        assert all(ord(c) in covered() or c == " " for c in drawable(name)), name
    sato, tanaka = _drawn("佐藤"), _drawn("田中")
    assert np.array_equal(sato, _drawn("[U+4F50 U+85E4]"))
    assert not np.array_equal(sato, _drawn("??")) and not np.array_equal(sato, tanaka)


def test_text_is_clipped_at_the_frame_edges_and_masks_are_reused():
    image = np.zeros((20, 30, 3), np.uint8)
    text = "Łukasz is a long name"
    box = draw_text(image, text, (-5, 12), 14, (255, 255, 255), background=(9, 9, 9))
    assert box[:2] == (-5, 12) and label_size(text, 14) == (box[2] - box[0], box[3] - box[1])
    assert (image[12:, :] != 0).any() and (image[:12] == 0).all()
    assert text_mask("Zoë", 14) is text_mask("Zoë", 14)
    with pytest.raises(ValueError, match="font size"):
        text_mask("x", 0)


# -- tuning on hand-made embeddings ------------------------------------------------------------------


def _sample(seed=0, n=240, noise=(0.5, 0.08), strangers=("zed",)):
    """Three people (the same for every seed) in a random order, faces drawn with ``seed``.

    Exit 0 is noisy, exit 1 clean; the oracle is always right.
    """
    people = ["amy", "ben", *strangers]
    centres = [np.random.default_rng(99).normal(size=(len(people), 16)) for _ in noise]
    rng = np.random.default_rng(seed)
    truth = [people[k] for k in rng.integers(len(people), size=n)]
    features = []
    for centre, sigma in zip(centres, noise, strict=True):
        rows = np.stack([centre[people.index(t)] / np.linalg.norm(centre[people.index(t)]) for t in truth])
        rows = rows + rng.normal(scale=sigma / 4, size=rows.shape)
        features.append((rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32))
    oracle = [t if t not in strangers else f"unknown-{strangers.index(t) + 1}" for t in truth]
    return FaceSample(features, oracle, list(truth), {"amy", "ben"})


def test_truth_accuracy_gives_each_stranger_one_stable_name():
    truth = ["amy", "zed", "zed", "zed", "yan", None]
    assert (
        truth_accuracy(["amy", "unknown-1", "unknown-1", "unknown-2", "unknown-2", "amy"], truth, {"amy"})
        == 0.8
    )
    # one unknown-N cannot stand for two strangers
    assert (
        truth_accuracy(["amy", "unknown-1", "unknown-1", "unknown-1", "unknown-1", "x"], truth, {"amy"})
        == 0.8
    )
    assert (
        truth_accuracy(["ben", "unknown-1", "unknown-1", "unknown-1", "unknown-2", "x"], truth, {"amy"})
        == 0.8
    )


def test_replay_without_thresholds_is_the_oracle_everywhere():
    sample = _sample()
    result = replay(sample, [None, None])
    assert result.oracle_rate == 1.0 and result.labels == sample.oracle_names and result.accuracy == 1.0


def test_tuning_meets_the_target_and_lets_the_clean_exit_decide():
    sample = _sample()
    thresholds, result = tune_thresholds(sample, target_accuracy=0.99)
    assert result.accuracy >= 0.99
    assert thresholds[0] is not None and thresholds[1] is not None
    assert result.hit_rate_per_exit[1] > 0.5  # the clean exit takes most faces
    assert 0 < result.hit_rate_per_exit[0] < 0.5  # the noisy one only the easy ones
    # the replay with the returned thresholds is the returned result
    again = replay(sample, thresholds)
    assert again.accuracy == result.accuracy and again.labels == result.labels
    held_out = replay(_sample(seed=1), thresholds)
    assert held_out.accuracy >= 0.97  # the same people, new faces: close to the target
    sweep = sweep_alpha(sample, thresholds, inv_alphas=(1, 15, 50))
    assert [r["inv_alpha"] for r in sweep] == [1.0, 15.0, 50.0]
    assert all(0 <= r["hit_rate"] <= 1 and 0 <= r["accuracy"] <= 1 for r in sweep)


def test_thresholds_stay_below_the_closest_wrong_approach():
    sample = _sample()
    closest = closest_wrong_approach(sample)
    assert all(0 < c < 2 for c in closest)
    thresholds, _ = tune_thresholds(
        sample, target_accuracy=0.5, margin_steps=0
    )  # accuracy alone allows a lot
    assert all(t is not None and t < c for t, c in zip(thresholds, closest, strict=True))


def test_tuning_gives_no_exit_when_the_oracle_misses_the_target():
    sample = _sample()
    sample.oracle_names[:40] = ["amy"] * 40  # an oracle wrong on some faces
    thresholds, result = tune_thresholds(sample, target_accuracy=0.99)
    assert thresholds == [None, None] and result.oracle_rate == 1.0
    with pytest.raises(ValueError, match="target_accuracy"):
        tune_thresholds(sample, target_accuracy=0)


def test_thresholds_file_round_trip_and_errors(tmp_path):
    tuned = FaceThresholds((0.3, None), alpha=0.1, model_sha="abc", target_accuracy=0.99, evaluation={"x": 1})
    path = tuned.save(tmp_path / "t.json")
    assert FaceThresholds.load(path, model_sha="abc", num_exits=2) == tuned
    with pytest.raises(ThresholdsError, match="tuned for face model abc"):
        FaceThresholds.load(path, model_sha="def")
    with pytest.raises(ThresholdsError, match="2 thresholds for a face model with 3 exits"):
        FaceThresholds.load(path, num_exits=3)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ThresholdsError, match="not a face thresholds file"):
        FaceThresholds.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "mxn-query-thresholds"}))
    with pytest.raises(ThresholdsError, match="mxn tune faces"):
        FaceThresholds.load(tmp_path / "other.json")
    with pytest.raises(ThresholdsError, match="no such"):
        FaceThresholds.load(tmp_path / "missing.json")
    with pytest.raises(ThresholdsError, match=">= 0"):
        FaceThresholds((-1.0,))


def test_alpha_plot_is_a_png(tmp_path):
    rows = [
        {"inv_alpha": 1.0, "hit_rate": 0.5, "accuracy": 0.99},
        {"inv_alpha": 15.0, "hit_rate": 0.8, "accuracy": 0.98},
    ]
    path = plot_alpha_sweep(rows, tmp_path / "a.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
