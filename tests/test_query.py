"""Label queries end to end on a short rendered traffic clip, judged against its gt-all index."""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mxn.cli import main
from mxn.cli.query import parse_time
from mxn.datasets.world.video import render_clip
from mxn.ingest.config import IngestConfig
from mxn.ingest.extraction import ExtractorConfig
from mxn.ingest.pipeline import ingest_videos
from mxn.query.accuracy import precision_recall
from mxn.query.executor import QueryError, QueryExecutor
from mxn.query.result import merge_segments
from mxn.query.thresholds import QueryThresholds, ThresholdsError, index_scorer_of, load_thresholds
from mxn.query.tuning import (
    TuningError,
    TuningSamples,
    collect_samples,
    evaluate,
    fit_thresholds,
    index_ceiling,
    tune,
)
from mxn.storage.store import Store

SMALL = IngestConfig(chunk_frames=30, extractor=ExtractorConfig(warmup=10))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """6 s of the downtown junction at 320x180, 15 fps: several kinds of road user."""
    out = tmp_path_factory.mktemp("query-clips") / "downtown.mp4"
    render_clip(out, "downtown", seconds=6, seed=3, size=(320, 180), fps=15, progress=False)
    return out


def index(url: str, clip: Path, models) -> None:
    """An mxn index and the gt-all reference of the same clip."""
    with Store(url) as store:
        for mode, model in (("mxn", models["ingest"]), ("gt-all", models["gt"])):
            config = IngestConfig(**{**SMALL.__dict__, "mode": mode})
            [r] = ingest_videos([clip], store, model, config, progress=False)
            assert r.status == "done", r.error


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, clip, models) -> str:
    """A SQLite store holding both indexes (tests copy it before writing verdicts)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('query-db') / 'index.db'}"
    index(url, clip, models)
    return url


@pytest.fixture
def db(indexed, tmp_path) -> str:
    """A private copy of the indexed store."""
    source = Path(indexed.removeprefix("sqlite:///"))
    copy = tmp_path / "index.db"
    shutil.copy(source, copy)
    return f"sqlite:///{copy}"


def engine(store: Store, models, **kwargs) -> QueryExecutor:
    return QueryExecutor(store, models["gt"], models["query"], **kwargs)


def test_answers_are_judged_against_the_gt_all_index(db, models):
    with Store(db) as store:
        labels = store.labels()
        assert {"car", "person"} <= set(labels)
        q = engine(store, models, use_cache=False)
        for label in labels:
            results = {mode: q.run(label, mode=mode) for mode in ("mxn", "focus", "all")}
            truth = {(o.video_id, o.frame) for o in store.objects(label=label, mode="gt-all")}
            for mode, result in results.items():
                # the reported figures are the frame-level precision and recall against gt-all
                precision, recall = precision_recall(result.frame_keys, truth)
                assert result.accuracy["precision"] == pytest.approx(precision), (label, mode)
                assert result.accuracy["recall"] == pytest.approx(recall), (label, mode)
                assert result.accuracy["truth_frames"] == len(truth)
            # all mode re-decodes the video and crops every object exactly as ingest did, so
            # the GT-CNN finds exactly the gt-all index's frames
            assert results["all"].frame_keys == truth, label
            assert results["all"].stats.gt_calls == len(store.objects(mode="mxn"))
            # focus runs the GT-CNN on every candidate; mxn lets exits decide some of them
            focus, mxn = results["focus"].stats, results["mxn"].stats
            assert focus.gt_calls == focus.candidates == mxn.candidates
            assert mxn.gt_calls == mxn.gt_decided == mxn.candidates - sum(mxn.decided_per_exit.values())
        # on the whole clip the answers are close to the reference (scripts/bench_query.py measures
        # how close on long clips; this 6 s clip has a few dozen frames per label)
        car = {mode: q.run("car", mode=mode).accuracy for mode in ("mxn", "focus")}
        assert car["focus"]["precision"] > 0.8 and car["focus"]["recall"] > 0.8, car
        assert car["mxn"]["precision"] > 0.8 and car["mxn"]["recall"] > 0.8, car


def test_every_hit_is_a_member_of_an_accepted_cluster_within_the_range(db, models):
    with Store(db) as store:
        result = engine(store, models).run("car", start=1.0, end=4.0)
        assert result.hits > 0
        [video] = result.videos
        for hit in video.hits:
            assert 1.0 <= hit.time <= 4.0
            assert hit.decided_by in {f"exit {i}" for i in range(5)} | {"gt-cnn"}
            members = {m.id for m in store.cluster_members(hit.cluster_id)}
            assert hit.object_id in members
        assert video.frames == sorted({h.frame for h in video.hits})
        for a, b in video.segments:
            assert 1.0 <= a <= b <= 4.0


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_repeated_query_runs_no_cnn(backend, request, tmp_path, clip, models):
    url = f"sqlite:///{tmp_path / 'q.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_db")
    index(url, clip, models)
    with Store(url) as store:
        q = engine(store, models)
        first = q.run("car")
        assert first.stats.mxn_calls == first.stats.candidates > 0
        assert first.stats.gt_calls == first.stats.gt_decided
        again = q.run("car")
        assert again.stats.mxn_calls == 0 and again.stats.gt_calls == 0
        assert again.stats.cached == again.stats.candidates + again.stats.gt_decided
        assert again.to_dict()["videos"] == first.to_dict()["videos"]
        # focus mode reuses the GT-CNN's verdicts and computes only the ones it lacks
        focus = q.run("car", mode="focus")
        assert focus.stats.gt_calls == focus.stats.candidates - first.stats.gt_decided
        assert q.run("car", mode="focus").stats.gt_calls == 0
        assert store.counts()["query_verdicts"] == 2 * first.stats.candidates


def test_thresholds_at_one_reproduce_focus_mode_exactly(db, models):
    with Store(db) as store:
        never = QueryThresholds((1.0,) * 5, (None,) * 5)
        for label in ("car", "person", "bus"):
            mxn = engine(store, models, thresholds=never, use_cache=False).run(label)
            focus = engine(store, models, use_cache=False).run(label, mode="focus")
            assert mxn.stats.decided_per_exit == {} and mxn.stats.gt_calls == focus.stats.gt_calls
            assert mxn.stats.mxn_calls == 0  # no exit can decide, so the query MXN is not run at all
            hits = [(h.object_id, h.cluster_id) for v in mxn.videos for h in v.hits]
            assert hits == [(h.object_id, h.cluster_id) for v in focus.videos for h in v.hits]
            assert all(h.decided_by == "gt-cnn" for v in mxn.videos for h in v.hits)


def test_the_index_stage_rejects_by_the_stored_score_with_no_model_run(db, models):
    with Store(db) as store:
        clusters = store.clusters("car", crops=False)
        for c in clusters:  # each candidate carries its representative's stored score for the label
            [rep] = [o for o in store.cluster_members(c.id) if o.id == c.representative_object_id]
            assert c.representative_score == pytest.approx(rep.labels["car"])
        scores = sorted(c.representative_score for c in clusters)
        cut = scores[len(scores) // 2]
        low = {c.id for c in clusters if c.representative_score <= cut}
        scorer = index_scorer_of(next(r for r in store.runs() if r.id == clusters[0].run_id))
        never = QueryThresholds.never(5)
        for wanted in (scorer, None):
            t = replace(never, index_reject=cut, index_scorer=wanted)
            result = engine(store, models, thresholds=t, use_cache=False).run("car")
            assert result.stats.decided_by_index == len(low) > 0
            assert result.stats.mxn_calls == 0  # no exit decides: only the GT-CNN ran, on the rest
            assert result.stats.gt_calls == len(clusters) - len(low)
            assert not low & {h.cluster_id for v in result.videos for h in v.hits}
        # scores written by another ingest model or settings are not this threshold's to judge
        other = replace(never, index_reject=cut, index_scorer="mxn:0000:exits=0:top9")
        result = engine(store, models, thresholds=other, use_cache=False).run("car")
        assert result.stats.decided_by_index == 0 and result.stats.gt_calls == len(clusters)


def test_a_query_reads_and_decodes_each_candidates_crop_once(db, models, monkeypatch):
    import mxn.query.executor

    decoded: list[int] = []
    decode = mxn.query.executor.decode_crop

    def counting(data: bytes) -> np.ndarray:
        decoded.append(len(data))
        return decode(data)

    monkeypatch.setattr(mxn.query.executor, "decode_crop", counting)
    with Store(db) as store:
        asked: list[int] = []
        read = store.cluster_crops

        def recording(ids):
            ids = list(ids)
            asked.extend(ids)
            return read(ids)

        store.cluster_crops = recording  # the real store, watched
        whole = engine(store, models, use_cache=False).run("car")
        assert whole.stats.mxn_calls == whole.stats.candidates > 0 and whole.stats.gt_calls > 0
        assert sorted(asked) == sorted(set(asked)) and len(asked) == whole.stats.candidates
        assert len(decoded) == whole.stats.candidates  # the GT-CNN reuses the query MXN's decoded crops
        # in small chunks (memory bounded by the chunk, not the index): the same answer, the same work
        chunked = engine(store, models, use_cache=False, chunk_size=7).run("car")
        assert [(h.object_id, h.decided_by) for v in chunked.videos for h in v.hits] == [
            (h.object_id, h.decided_by) for v in whole.videos for h in v.hits
        ]
        assert (chunked.stats.gt_calls, chunked.stats.decided_per_exit) == (
            whole.stats.gt_calls,
            whole.stats.decided_per_exit,
        )
        assert len(decoded) == 2 * whole.stats.candidates
        with pytest.raises(QueryError, match="chunk_size and cascade_batch_size must be at least 1"):
            engine(store, models, chunk_size=0)
        # the cascade's batch size changes only the speed
        small = engine(store, models, use_cache=False, cascade_batch_size=5).run("car")
        assert [h.object_id for v in small.videos for h in v.hits] == [
            h.object_id for v in whole.videos for h in v.hits
        ]
        assert small.stats.decided_per_exit == whole.stats.decided_per_exit


def _rewrite_crops(url: str, change) -> int:
    """Replace every stored representative crop by ``change(bytes)``, straight in SQL; the count."""
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
        rows = con.execute("SELECT id, representative_crop FROM clusters").fetchall()
        con.executemany(
            "UPDATE clusters SET representative_crop = ? WHERE id = ?", [(change(d), i) for i, d in rows]
        )
    return len(rows)


def test_an_index_with_png_crops_answers_as_before_and_a_damaged_crop_is_named(db, models, tmp_path):
    from mxn.storage.crop_codec import MAGIC, crop_png

    def hits(url: str) -> list[tuple[int, str]]:
        with Store(url) as store:
            result = engine(store, models, use_cache=False).run("car")
        return [(h.object_id, h.decided_by) for v in result.videos for h in v.hits]

    with Store(db) as store:
        [car] = store.clusters("car", mode="mxn")[:1]
        assert car.representative_crop.startswith(MAGIC)  # what ingest writes now
    expected = hits(db)
    assert expected
    older = tmp_path / "older.db"
    shutil.copy(db.removeprefix("sqlite:///"), older)
    assert _rewrite_crops(f"sqlite:///{older}", crop_png) > 0  # as indexes stored them until 2026-12-02
    assert hits(f"sqlite:///{older}") == expected
    _rewrite_crops(db, lambda d: d[: len(d) // 2])
    with Store(db) as store, pytest.raises(QueryError, match=r"cluster \d+: .*damaged"):
        engine(store, models, use_cache=False).run("car")


def test_unknown_labels_and_empty_answers(db, models):
    with Store(db) as store:
        q = engine(store, models)
        with pytest.raises(QueryError, match=r"unknown label 'zebra'; the index knows: .*car"):
            q.run("zebra")
        empty = q.run("car", start=500.0)  # after the clip: a valid, empty answer
        assert empty.videos == [] and empty.stats.candidates == 0 and empty.hits == 0
        assert empty.accuracy["recall"] == 1.0 and empty.accuracy["truth_frames"] == 0
        with pytest.raises(QueryError, match=r"no video 'nope\.mp4'"):
            q.run("car", video="nope.mp4")
        with pytest.raises(QueryError, match=r"ends .* before it starts"):
            q.run("car", start=3.0, end=1.0)


def test_cli_query_writes_answer_sheet_and_json(db, tmp_path):
    out, sheet, js = tmp_path / "cars.csv", tmp_path / "cars.png", tmp_path / "cars.json"
    args = ["query", "car", "--db", db, "--video", "downtown.mp4", "--from", "0:01", "--to", "5"]
    result = CliRunner().invoke(
        main, [*args, "--out", str(out), "--sheet", str(sheet), "--json", str(js), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "candidate clusters:" in result.output and "against the gt-all index: precision" in result.output
    rows = list(csv.DictReader(out.open()))
    data = json.loads(js.read_text())
    assert len(rows) == sum(len(v["hits"]) for v in data["videos"]) > 0
    assert all(1.0 <= float(r["time"]) <= 5.0 and r["video"] == "downtown.mp4" for r in rows)
    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[0] >= 60 and image.shape[1] >= 240
    # the sheet shows frames with green boxes drawn on them
    assert np.any(np.all(image == (40, 220, 40), axis=2))
    # an empty answer is a success too
    empty = CliRunner().invoke(main, ["query", "car", "--db", db, "--from", "999", "--quiet"])
    assert empty.exit_code == 0 and "no frames show it" in empty.output


HEADER = '{"format": "mxn-query-thresholds", "format_version": 1, '


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not an mxn query thresholds file: cannot read it as JSON"),
        ('{"format": "something else"}', "not an mxn query thresholds file"),
        (HEADER + '"accept": [0.9, 2], "reject": [null, null]}', r"accept\[1\] must be a probability"),
        (HEADER + '"accept": [0.9], "reject": [null]}', "thresholds for 1 exits, but the query model has 5"),
        (HEADER + '"accept": [null], "reject": [null], "index_reject": "x"}', "index_reject"),
    ],
)  # fmt: skip
def test_bad_thresholds_files_get_a_clear_error(db, tmp_path, content, message):
    bad = tmp_path / "thresholds.json"
    bad.write_text(content)
    result = CliRunner().invoke(main, ["query", "car", "--db", db, "--thresholds", str(bad)])
    assert result.exit_code == 1
    assert "Error:" in result.output and re.search(message, result.output), result.output


def test_cli_unknown_label_fails_and_lists_the_labels(db):
    result = CliRunner().invoke(main, ["query", "zebra", "--db", db])
    assert result.exit_code == 1 and "the index knows:" in result.output and "car" in result.output


def test_tune_query_cli_writes_thresholds_that_query_uses(db, models, tmp_path):
    out, plot, js = tmp_path / "t.json", tmp_path / "curve.png", tmp_path / "tune.json"
    args = ["tune", "query", "--db", db, "--out", str(out), "--plot", str(plot), "--json", str(js), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "held out: precision" in result.output and "trade-off" in result.output
    assert "per label (own thresholds" in result.output
    assert "index ceiling (Focus's answer" in result.output  # the store holds a gt-all index of the clip
    thresholds = load_thresholds(out)
    assert thresholds.num_exits == 5 and thresholds.model_sha and thresholds.target_precision == 0.99
    assert "car" in thresholds.per_label and "car" in json.loads(js.read_text())["held_out"]["per_label"]
    assert "car" in json.loads(js.read_text())["index_ceiling"]
    data = json.loads(js.read_text())
    assert [c["target_precision"] for c in data["curve"]] == sorted(
        c["target_precision"] for c in data["curve"]
    )
    assert cv2.imread(str(plot)) is not None
    assert thresholds.evaluation["pooled_precision"] is True
    # the tuner sees the index's stored scores, and whose they are; --no-index-stage leaves them out
    with Store(db) as store:
        samples = collect_samples(store, models["gt"], models["query"])
        assert samples.index_scorer == index_scorer_of(next(r for r in store.runs() if r.mode == "mxn"))
        by_id = {c.id: c.representative_score for label in store.labels() for c in store.clusters(label)}
        assert samples.index_scores == pytest.approx([by_id[i] for i in samples.cluster_ids])
    plain = tmp_path / "plain.json"
    off = CliRunner().invoke(
        main, ["tune", "query", "--db", db, "--out", str(plain), "--no-index-stage", "--quiet"]
    )
    assert off.exit_code == 0, off.output
    assert load_thresholds(plain).index_scorer is None and load_thresholds(plain).index_reject is None
    bad = CliRunner().invoke(main, ["tune", "query", "--db", db, "--index-share", "2", "--quiet"])
    assert bad.exit_code == 2 and "--index-share" in bad.output
    # another index's candidates join in (here the same index again: twice the samples)
    pooled = tmp_path / "pooled.json"
    both = CliRunner().invoke(
        main, ["tune", "query", "--db", db, "--also-db", db, "--out", str(pooled), "--quiet"]
    )
    assert both.exit_code == 0, both.output
    assert load_thresholds(pooled).evaluation["samples"] == 2 * thresholds.evaluation["samples"]
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    missing = CliRunner().invoke(main, ["tune", "query", "--db", db, "--also-db", empty, "--quiet"])
    assert missing.exit_code == 1 and "no mxn database at" in missing.output  # never made up
    Store(empty).close()  # an mxn store that holds no index
    none = CliRunner().invoke(
        main, ["tune", "query", "--db", db, "--also-db", empty, "--out", str(pooled), "--quiet"]
    )
    assert none.exit_code != 0 and "empty.db" in none.output and "no clusters to tune on" in none.output
    per_exit = tmp_path / "per-exit.json"
    alone = CliRunner().invoke(
        main, ["tune", "query", "--db", db, "--out", str(per_exit), "--per-exit", "--quiet"]
    )
    assert alone.exit_code == 0, alone.output
    assert load_thresholds(per_exit).evaluation["pooled_precision"] is False
    queried = CliRunner().invoke(main, ["query", "car", "--db", db, "--thresholds", str(out), "--quiet"])
    assert queried.exit_code == 0, queried.output
    # thresholds tuned for another query model are refused
    data = thresholds.to_dict() | {"model_sha": "0" * 64}
    out.write_text(json.dumps(data))
    with pytest.raises(ThresholdsError, match="tuned for another query model"), Store(db) as store:
        engine(store, models, thresholds=load_thresholds(out))


def test_the_index_ceiling_is_focus_modes_answer_judged_against_gt_all(db, models):
    """What tuning reports as the best any thresholds reach is exactly what a focus query answers."""
    from mxn import api

    result = api.tune_query(db=db, gt=models["gt"], qmodel=models["query"], out=None, progress=False)
    ceiling = result.index_ceiling
    with Store(db) as store:
        labels = sorted({*store.labels(), *store.labels(mode="gt-all")})
        assert set(ceiling) == set(labels)
        assert sum(c["truth_frames"] for c in ceiling.values()) > 0
        focus = engine(store, models, use_cache=False)
        for label in labels:
            answer = focus.run(label, mode="focus").accuracy
            assert answer is not None
            for key in ("precision", "recall", "answer_frames", "truth_frames", "correct_frames"):
                assert ceiling[label][key] == answer[key], (label, key)
        # no gt-all index of an index of that mode: nothing to judge against
        assert index_ceiling(store, collect_samples(store, models["gt"], models["query"]), "focus") == {}
    t = result.thresholds
    assert result.ceiling_misses() == {
        label: c for label, c in ceiling.items()
        if c["precision"] < t.target_precision or c["recall"] < t.target_recall
    }  # fmt: skip


# -- pure pieces ----------------------------------------------------------------------------------


def synthetic_samples(
    n: int, seed: int, label: str = "bus", noise=(0.35, 0.15), index_noise: float | None = None
) -> TuningSamples:
    """Two exits; the deeper one separates positives from negatives better (less ``noise``).

    With ``index_noise``, index scores too (as the ingest model would have stored them).
    """
    rng = np.random.default_rng(seed)
    positive = rng.random(n) < 0.4

    def score(s: float) -> np.ndarray:
        return np.clip(np.where(positive, 0.8, 0.2) + rng.normal(0, s, n), 0, 1)

    scores = np.stack([score(s) for s in noise])
    index = score(index_noise) if index_noise is not None else None
    return TuningSamples(np.arange(n), np.array([label] * n), scores, positive, index, "mxn:test")


def test_the_index_stage_rejects_for_free_within_its_share_of_the_recall_budget(tmp_path):
    samples = synthetic_samples(8000, seed=7, index_noise=0.2)
    with_index = tune(samples, curve_targets=())
    without = tune(samples, index_stage=False, curve_targets=())
    t, held = with_index.thresholds, with_index.held_out
    assert t.index_reject is not None and t.per_label["bus"].index_reject is not None
    assert t.index_scorer == "mxn:test" and t.evaluation["index_recall_share"] == 0.3
    assert held["decided_by_index"] > 0.2 * held["candidates"]
    assert held["recall"] >= 0.99 and held["precision"] >= 0.99
    # what the index rejected for free, the exits or the GT-CNN paid for before
    assert sum(held["decided_per_exit"]) < sum(without.held_out["decided_per_exit"])
    assert without.thresholds.index_reject is None and without.held_out["decided_by_index"] == 0
    # no share of the budget, no index stage; scores of another scorer are not used
    assert fit_thresholds(samples, index_recall_share=0).index_reject is None
    other = TuningSamples(*[getattr(samples, f) for f in ("cluster_ids", "labels", "scores", "positive")],
                          samples.index_scores, "mxn:another")  # fmt: skip
    assert evaluate(t, other)["decided_by_index"] == 0
    # no index scores at all (an index without them): the exits alone, as before
    assert fit_thresholds(synthetic_samples(8000, seed=7)).index_reject is None
    # the file keeps the index stage; thresholds without one keep the key they always had
    again = load_thresholds(t.save(tmp_path / "t.json"))
    assert again == t and again.key() == t.key()
    plain = without.thresholds
    assert plain.key() == QueryThresholds(plain.accept, plain.reject, per_label=plain.per_label).key()
    assert "index_reject" not in plain.decisions() and plain.to_dict()["index_scorer"] is None


def test_per_label_thresholds_keep_a_hard_labels_recall(tmp_path):
    # cars are easy for the exits, vans hard: one shared set spends the recall budget unevenly
    samples = TuningSamples.concat(
        [synthetic_samples(8000, 4, "car", (0.1, 0.05)), synthetic_samples(3000, 5, "van", (0.4, 0.3))]
    )
    shared = tune(samples, per_label=False, curve_targets=())
    own = tune(samples, curve_targets=())
    assert set(own.thresholds.per_label) == {"car", "van"} and not shared.thresholds.per_label
    for label in ("car", "van"):
        assert own.held_out["per_label"][label]["recall"] >= 0.98
        assert own.held_out["per_label"][label]["precision"] >= 0.98
    assert shared.held_out["per_label"]["van"]["recall"] < own.held_out["per_label"]["van"]["recall"]
    assert own.thresholds.for_label("car") != own.thresholds.for_label("van")
    assert own.thresholds.for_label("bus") is own.thresholds  # no thresholds of its own: the shared ones
    # they survive the file, and name other cached verdicts than the shared ones
    again = load_thresholds(own.thresholds.save(tmp_path / "t.json"))
    assert again == own.thresholds and again.key() == own.thresholds.key()
    assert own.thresholds.key() != QueryThresholds(own.thresholds.accept, own.thresholds.reject).key()


def test_a_small_calibration_clip_decides_nothing_alone_and_much_when_pooled_with_another_camera():
    # a quiet camera's clip holds too few candidates to show 99% with the Wilson margin ...
    quiet = synthetic_samples(300, seed=8, noise=(0.1, 0.05), index_noise=0.2)
    busy = synthetic_samples(8000, seed=9, noise=(0.1, 0.05), index_noise=0.2)
    alone = tune(quiet, curve_targets=())
    assert alone.held_out["gt_call_rate"] == 1.0
    # ... pooled with a busy camera's, the thresholds decide most of the quiet camera's candidates too
    pooled = tune(TuningSamples.concat([quiet, busy]), curve_targets=())
    on_quiet = evaluate(pooled.thresholds, quiet)
    assert on_quiet["gt_call_rate"] < 0.5
    assert on_quiet["precision"] >= 0.98 and on_quiet["recall"] >= 0.98
    assert pooled.thresholds.evaluation["samples"] == len(quiet) + len(busy)


def test_labels_a_cameras_own_thresholds_cannot_decide_borrow_the_pooled_ones(tmp_path):
    def camera(buses: int, cars: int, seed: int) -> TuningSamples:
        return TuningSamples.concat([
            synthetic_samples(buses, seed, "bus", (0.1, 0.05), index_noise=0.2),
            synthetic_samples(cars, seed + 1, "car", (0.1, 0.05), index_noise=0.2),
        ])  # fmt: skip

    quiet, busy = camera(300, 6000, seed=8), camera(8000, 8000, seed=20)
    own = tune(quiet, curve_targets=()).thresholds
    pooled = tune(TuningSamples.concat([quiet, busy]), curve_targets=()).thresholds
    assert not own.for_label("bus").decides and own.for_label("car").decides
    both = own.falling_back_to(pooled)
    assert both.for_label("car") == own.for_label("car")  # its camera's evidence suffices: kept
    assert both.for_label("bus") == pooled.for_label("bus")
    bus = evaluate(both, quiet)["per_label"]["bus"]
    assert bus["gt_call_rate"] < 0.5 and bus["precision"] >= 0.98 and bus["recall"] >= 0.98
    assert evaluate(own, quiet)["per_label"]["bus"]["gt_call_rate"] == 1.0
    assert load_thresholds(both.save(tmp_path / "both.json")) == both  # a thresholds file like any other
    # another index's scores mean nothing here: the borrowed thresholds lose their index stage
    assert pooled.for_label("bus").index_reject is not None
    other = own.falling_back_to(replace(pooled, index_scorer="mxn:another"))
    assert other.for_label("bus").index_reject is None and other.index_scorer == own.index_scorer
    with pytest.raises(ThresholdsError, match="another query model"):
        replace(own, model_sha="a" * 64).falling_back_to(replace(pooled, model_sha="b" * 64))
    with pytest.raises(ThresholdsError, match="exits to fall back to"):
        own.falling_back_to(QueryThresholds.never(3))


def test_joined_samples_keep_the_index_scores_of_the_scorer_most_of_them_share():
    ours = synthetic_samples(100, seed=1, index_noise=0.2)
    theirs = replace(synthetic_samples(50, seed=2, index_noise=0.2), index_scorer="mxn:another")
    both = TuningSamples.concat([ours, theirs])
    assert len(both) == 150 and both.index_scorer == "mxn:test"
    assert np.isfinite(both.index_scores[:100]).all() and np.isnan(both.index_scores[100:]).all()
    np.testing.assert_array_equal(both.scores[:, 100:], theirs.scores)
    unscored = TuningSamples.concat([synthetic_samples(10, seed=3)])
    assert unscored.index_scores is None and unscored.index_scorer is None
    with pytest.raises(TuningError, match="different numbers of exits"):
        TuningSamples.concat([ours, replace(theirs, scores=theirs.scores[:1])])
    with pytest.raises(TuningError, match="no samples"):
        TuningSamples.concat([])


def test_tuned_thresholds_meet_their_targets_on_held_out_data():
    samples = synthetic_samples(6000, seed=1)
    result = tune(samples, target_precision=0.99, target_recall=0.99, curve_targets=(0.9, 0.99))
    held = result.held_out
    assert held["precision"] >= 0.99 and held["recall"] >= 0.99
    assert held["gt_call_rate"] < 0.8  # the exits do decide a fair share
    assert any(r is not None for r in result.thresholds.reject)
    # a looser target lets the exits decide more
    loose, strict = result.curve
    assert loose["gt_call_rate"] <= strict["gt_call_rate"]
    # with no rejections allowed, every negative goes to the GT-CNN or is accepted wrongly
    no_reject = fit_thresholds(samples, allow_reject=False)
    assert all(r is None for r in no_reject.reject)


def test_pooled_precision_lets_a_late_exit_decide_and_keeps_the_answers_precision():
    # exit 0 is sure of many candidates; exit 1 sees the few left, too few to show 99% on its own
    samples = synthetic_samples(8000, seed=6, noise=(0.12, 0.1))
    result = {
        pooled: tune(samples, pooled_precision=pooled, allow_reject=False, curve_targets=())
        for pooled in (True, False)
    }
    pooled, alone = result[True], result[False]
    assert pooled.thresholds.accept[0] == alone.thresholds.accept[0]  # nothing accepted before exit 0
    assert pooled.held_out["decided_per_exit"][1] > alone.held_out["decided_per_exit"][1]
    assert pooled.held_out["gt_call_rate"] < alone.held_out["gt_call_rate"]
    assert pooled.held_out["precision"] >= 0.99 and pooled.fit["precision"] >= 0.99
    assert pooled.thresholds.evaluation["pooled_precision"] is True


def test_evaluate_with_no_thresholds_is_focus():
    samples = synthetic_samples(500, seed=2)
    figures = evaluate(QueryThresholds.never(2), samples)
    assert figures["precision"] == figures["recall"] == figures["gt_call_rate"] == 1.0
    assert figures["decided_per_exit"] == [0, 0]


def test_rejections_need_enough_positives_to_show_recall_is_kept():
    samples = synthetic_samples(60, seed=3)  # ~24 positives: no rejection can be shown safe at 99%
    assert all(r is None for r in fit_thresholds(samples).reject)


def test_merge_segments_and_times():
    assert merge_segments([0.0, 0.5, 1.4, 5.0, 5.2, 9.0], max_gap=1.0) == [(0.0, 1.4), (5.0, 5.2), (9.0, 9.0)]
    assert merge_segments([]) == []
    assert parse_time("90") == 90 and parse_time("1:30") == 90 and parse_time("0:01:30.5") == 90.5
    with pytest.raises(Exception, match="expected seconds"):
        parse_time("ten")


def test_cli_query_writes_an_html_report(db, tmp_path):
    report = tmp_path / "query.html"
    result = CliRunner().invoke(main, ["query", "car", "--db", db, "--html", str(report), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"wrote {report}" in result.output and "<html" in report.read_text()


def test_cli_crops_cuts_a_training_set_labelled_by_the_gt_cnn(indexed, models, tmp_path):
    from mxn.images import SPLITS, load_dataset, resize_batch
    from mxn.ingest.training_set import index_crops, split_by_time

    out = tmp_path / "crops"
    result = CliRunner().invoke(
        main, ["crops", "--db", indexed, "--out", str(out), "--block-seconds", "1", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    with Store(indexed) as store:
        crops = index_crops(store)
    # every object once, though it represents a cluster under each of its labels
    assert (
        len({c.object_id for c in crops})
        == len(crops)
        == sum(sum(c.values()) for c in manifest["counts"].values())
    )
    written = {p.stem: p for p in out.glob("*/*/*.png")}
    assert sorted(written) == sorted(f"{c.video_id}_{c.object_id}" for c in crops)
    # the folder is the GT-CNN's top-1 on the stored crop
    gt = models["gt"]
    sample = crops[:: max(1, len(crops) // 40)]
    files = [written[f"{c.video_id}_{c.object_id}"] for c in sample]
    images = resize_batch([cv2.imread(str(f))[:, :, ::-1] for f in files], gt.spec.input_size)
    top = gt.runner(64).all_exits(images, exits=[0]).output(0).argmax(axis=1)
    assert [f.parent.name for f in files] == [gt.classes[t] for t in top]
    # whole seconds of video go to one split, and mxn train reads the folder
    splits = split_by_time(crops, 1.0, (0.8, 0.1, 0.05, 0.05), 0)
    for c, s in zip(crops, splits, strict=True):
        assert written[f"{c.video_id}_{c.object_id}"].parts[-3] == SPLITS[s]
    by_second: dict[int, set[int]] = {}
    for c, s in zip(crops, splits, strict=True):
        by_second.setdefault(int(c.time), set()).add(int(s))
    assert all(len(s) == 1 for s in by_second.values()) and len(set(splits.tolist())) > 1
    loaded = load_dataset(out, 32)
    assert len(loaded["train"]) == sum(manifest["counts"]["train"].values())
    # the folder is not overwritten, and an empty index says so
    again = CliRunner().invoke(main, ["crops", "--db", indexed, "--out", str(out), "--quiet"])
    assert again.exit_code == 1 and "is not an empty folder" in again.output
    Store(tmp_path / "empty.db").close()  # an mxn store that holds no index
    empty = CliRunner().invoke(
        main, ["crops", "--db", f"sqlite:///{tmp_path / 'empty.db'}", "--out", str(tmp_path / "e"), "--quiet"]
    )
    assert empty.exit_code == 1 and "no mxn clusters" in empty.output
    bad = CliRunner().invoke(main, ["crops", "--db", indexed, "--out", str(tmp_path / "b"), "--every", "0"])
    assert bad.exit_code == 2 and "every" in bad.output


# -- contact sheets: labels and video names in any script ------------------------------------------------


def _sheet(label: str, video_name: str | None = None, path: Path | None = None) -> np.ndarray:
    """The contact sheet of one answer frame of ``path`` shown as ``video_name`` (none: an empty answer)."""
    from mxn.query.result import Hit, QueryResult, QueryStats, VideoAnswer
    from mxn.query.sheet import sheet_image

    hits = [Hit(2, 0.2, (10, 10, 40, 40), 1, 1, "exit 0")]
    videos = [] if path is None else [VideoAnswer(1, str(video_name), str(path), 10.0, hits)]
    return sheet_image(QueryResult(label, "mxn", "mxn", None, None, videos, QueryStats()), tile_width=160)


def test_sheet_captions_and_labels_keep_non_ascii_letters(tmp_path):
    """OpenCV's putText drew each UTF-8 byte of a non-ASCII letter as '?'; the sheet now draws the letter."""
    empty = _sheet("Łukasz")
    assert not np.array_equal(empty, _sheet("??ukasz")) and not np.array_equal(empty, _sheet("?ukasz"))
    assert np.array_equal(empty, _sheet("Łukasz"))
    src = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 64))
    for k in range(4):
        writer.write(np.full((64, 96, 3), 60 + 20 * k, np.uint8))
    writer.release()
    zoe = _sheet("car", "Zoë.mp4", src)
    assert not np.array_equal(zoe, _sheet("car", "Zo??.mp4", src))
    assert not np.array_equal(zoe, _sheet("car", "Zoe.mp4", src))
    # a script the bundled font lacks: its code points, never '??' or blank boxes
    sato = _sheet("car", "佐藤.mp4", src)
    assert np.array_equal(sato, _sheet("car", "[U+4F50 U+85E4].mp4", src))
    assert not np.array_equal(sato, _sheet("car", "??????.mp4", src))
    assert (zoe[:17, :, 1] == 0).mean() > 0.5 and (zoe[17:, 2:60, 1] > 0).all()  # a black caption band
