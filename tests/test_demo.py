"""``mxn demo --quick``: the whole story in its reduced form, its reports checked against its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_reports import read_report

from mxn.cli import main
from mxn.cli.demo import STRANGER, DemoPaths, DemoPlan, prepare, truth_accuracy
from mxn.datasets.movies import Face, Truth
from mxn.facerec.outputs import LabelledFace
from mxn.storage.store import Store


def _demo(out: Path) -> tuple[dict, str]:
    result = CliRunner().invoke(
        main, ["demo", "--quick", "--out", str(out), "--json", str(out / "demo.json")]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads((out / "demo.json").read_text()), result.output


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("demo")
    data, output = _demo(out)
    return out, data, output


def test_demo_tells_the_whole_story_with_sane_figures(demo):
    _, data, output = demo
    for k in range(1, 6):
        assert f"[{k}/5]" in output
    assert data["plan"]["quick"] and not data["reused"]
    # ingest: one clip, two indexes from the same object extraction
    mxn, gt_all = data["ingest"]
    assert (mxn["mode"], gt_all["mode"]) == ("mxn", "gt-all")
    assert mxn["frames"] == gt_all["frames"] == data["clip"]["frames"] == 120
    assert mxn["objects"] == gt_all["objects"] > 50
    assert mxn["indexing"] >= 2 * mxn["objects"] and gt_all["indexing"] == gt_all["objects"]
    assert 0 < mxn["clusters"] <= mxn["indexing"]
    # queries: the plan's labels the index knows, each decided by exits or the GT-CNN
    labels = [q["label"] for q in data["queries"]]
    assert labels and set(labels) <= set(data["plan"]["labels"]) and "car" in labels
    for q in data["queries"]:
        assert q["decided_by_index"] + q["decided_by_exits"] + q["gt_decided"] == q["candidates"] > 0
        assert q["gt_calls"] == q["gt_decided"]  # a fresh database: nothing cached
        assert 0 <= q["precision"] <= 1 and 0 <= q["recall"] <= 1
        assert q["frames"] <= data["clip"]["frames"] and q["segments"] <= q["frames"]
    car = next(q for q in data["queries"] if q["label"] == "car")
    assert car["precision"] > 0.8 and car["recall"] > 0.8
    assert data["tuning"]["candidates"] == mxn["clusters"]
    # faces: the whole cast, the stranger under a stable unknown name, mostly right
    faces = data["faces"]
    assert faces["faces"] > 10 and sum(faces["hits_per_exit"]) + faces["oracle_calls"] == faces["faces"]
    assert STRANGER not in faces["people"] and "unknown-1" in faces["people"] and len(faces["people"]) == 7
    assert faces["truth_accuracy"] >= 0.8
    # every result is where the table says, and the table is printed
    for what, path in data["files"].items():
        assert Path(path).exists(), what
        assert path in output


def test_demo_reports_show_the_same_numbers_as_its_json(demo):
    out, data, _ = demo
    index = read_report(out / "index.html")
    assert index.sections == ["summary", "ingest", "queries", "tuning", "faces", "files", "time"]
    mxn = data["ingest"][0]
    assert index.value("objects") == mxn["objects"] and index.value("clusters") == mxn["clusters"]
    assert index.value("faces") == data["faces"]["faces"]
    assert index.value("faces_accuracy") == pytest.approx(data["faces"]["truth_accuracy"])
    assert index.value("seconds") == pytest.approx(data["seconds"])
    rows = {r[0]: r for r in index.table("queries-table")}
    for q in data["queries"]:
        assert index.value(f"query.{q['label']}.precision") == pytest.approx(q["precision"])
        assert rows[q["label"]][1:4] == [str(q["candidates"]), str(q["decided_by_exits"]), str(q["gt_calls"])]
        report = read_report(Path(q["report"]))
        assert report.value("candidates") == q["candidates"] and report.value("gt_calls") == q["gt_calls"]
        assert report.value("exit_decided") == q["decided_by_exits"]
        assert report.value("recall") == pytest.approx(q["recall"])
        assert report.sections[-1] == "plots"  # the tuning trade-off curve, embedded
    # links are relative to the page, and lead to the files
    assert "query-car.html" in index.links and all(
        (out / link).exists() for link in index.links if "#" not in link
    )

    ingest = read_report(out / "ingest.html")
    for k, run in enumerate(data["ingest"]):
        for key in ("frames", "objects", "indexing", "clusters"):
            assert ingest.value(f"run{k}.{key}") == run[key]
    faces = read_report(out / "faces.html")
    assert faces.value("faces") == data["faces"]["faces"]
    assert faces.value("oracle_calls") == data["faces"]["oracle_calls"]
    assert faces.value("truth_accuracy") == pytest.approx(data["faces"]["truth_accuracy"])
    for i, rate in enumerate(data["faces"]["hit_rate_per_exit"]):
        assert faces.value(f"share.exit{i}") == pytest.approx(rate)


def test_demo_again_reuses_its_data_and_answers_from_the_cache(demo):
    out, first, _ = demo
    again, _ = _demo(out)
    assert again["reused"]
    assert [r["status"] for r in again["ingest"]] == ["skipped", "skipped"]
    assert [r["objects"] for r in again["ingest"]] == [r["objects"] for r in first["ingest"]]
    for before, after in zip(first["queries"], again["queries"], strict=True):
        assert after["gt_calls"] == 0 and after["cached"] > 0
        assert (after["frames"], after["precision"], after["recall"]) == (
            before["frames"], before["precision"], before["recall"]
        )  # fmt: skip
    assert again["faces"]["faces"] == first["faces"]["faces"]
    with Store(DemoPaths(out).url) as store:  # nothing doubled: one clip, one movie, two indexes
        counts = store.counts()
        assert counts["videos"] == 2 and counts["runs"] == 2 and counts["face_runs"] == 1
        assert counts["objects"] == 2 * first["ingest"][0]["objects"]


def test_another_plan_removes_only_the_demos_own_data(tmp_path):
    paths, plan = DemoPaths(tmp_path), DemoPlan.make(quick=True)
    assert not prepare(paths, plan)
    for made in (paths.db, paths.clip(plan), paths.movie(plan), paths.cast / "x" / "0.jpg"):
        made.parent.mkdir(parents=True, exist_ok=True)
        made.write_text("x")
    mine = paths.data / "notes.txt"
    mine.write_text("the user's")
    assert prepare(paths, plan)  # the same plan: reused
    assert not prepare(paths, DemoPlan.make(quick=True, seed=1))
    assert not paths.db.exists() and not paths.clip(plan).exists() and not paths.cast.exists()
    assert mine.read_text() == "the user's"
    with pytest.raises(ValueError, match="--seconds"):
        DemoPlan.make(seconds=0)


def test_truth_accuracy_matches_boxes_to_the_drawn_faces():
    drawn = [[Face("ann", (0, 0, 40, 40)), Face("zed", (100, 0, 140, 40))], [Face("zed", (0, 0, 40, 40))]]
    truth = Truth({}, drawn, [0.0, 0.1])

    def face(frame: int, box, name: str) -> LabelledFace:
        return LabelledFace("m.mp4", frame, frame / 10, box, name, None, None)

    faces = [face(0, (1, 1, 41, 41), "ann"), face(0, (101, 0, 141, 40), "unknown-1"),
             face(1, (0, 0, 40, 40), "ann"), face(1, (200, 200, 240, 240), "ann")]  # fmt: skip
    # ann right; zed (a stranger) is unknown-1 once and ann once: 2 of 3 drawn faces right; the box
    # on no drawn face is not counted
    assert truth_accuracy(faces, truth, {"ann"}) == pytest.approx(2 / 3)
