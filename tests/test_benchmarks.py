"""The benchmark scripts run in their --quick form and write the JSON keys the docs cite.

These check that the scripts work, not how fast anything is: timings live in
the scripts' output and docs/BENCHMARKS.md, never in assertions.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _run(script: str, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / script), "--quick", "--json", str(out), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(out.read_text())


def test_bench_world(tmp_path):
    result = _run("bench_world.py", tmp_path)
    assert set(result["presets"]) == {"quiet_road", "highway", "downtown", "night"}
    assert all(p["frames"] == 600 for p in result["presets"].values())
    assert "faster_than_real_time" in result["targets_met"]


def test_bench_startup(tmp_path):
    result = _run("bench_startup.py", tmp_path, "--before", str(SCRIPTS.parent))
    assert set(result["trees"]) == {"this tree", "before"} and result["runs"] == 3
    for tree in result["results"].values():
        assert set(tree) == {"import mxn.api, mxn.cli", "mxn --help"}
        assert all(len(t["runs_ms"]) == 3 and t["median_ms"] > 0 for t in tree.values())


@pytest.mark.slow
def test_bench_mxn(tmp_path):
    result = _run("bench_mxn.py", tmp_path)
    for key in ("prefix_batching_speedup", "prefix_batching_bound", "early_exit_batch_speedup",
                "training_speedup", "training_bound"):  # fmt: skip
        assert result[key] > 0


@pytest.mark.slow
def test_bench_accuracy(tmp_path):
    result = _run("bench_accuracy.py", tmp_path)
    assert len(result["exit_accuracy"]["single_exit"]) == 5
    for key in ("focal_precision_gain_05", "focal_precision_gain_07"):
        assert isinstance(result[key], float)


#: The per-preset keys docs/BENCHMARKS.md cites from scripts/bench_ingest.py.
INGEST_KEYS = ("recall", "indexing_mxn", "indexing_focus", "speedup_vs_focus", "model_time_ratio_vs_gt_all",
               "speedup_vs_gt_all", "floor_fraction", "peak_rss_mb")  # fmt: skip


@pytest.mark.slow
def test_bench_ingest(tmp_path):
    result = _run("bench_ingest.py", tmp_path)
    assert set(result["presets"]) == {"quiet_road", "highway", "downtown", "night"}
    for name, preset in result["presets"].items():
        assert set(INGEST_KEYS) <= set(preset), name
        assert 0.0 <= preset["recall"] <= 1.0
        assert preset["recall_matches_probe"], name  # the real index recalls what the probe predicted
        assert preset["indexing_mxn"] > 0 and preset["indexing_focus"] > 0
        for key in ("speedup_vs_focus", "model_time_ratio_vs_gt_all", "speedup_vs_gt_all", "peak_rss_mb"):
            assert preset[key] > 0, (name, key)
        assert 0.0 < preset["floor_fraction"] <= 1.2, name
        for mode, median in preset["median"].items():
            assert median["seconds"] > 0 and median["model_s"] > 0, (name, mode)
        assert len(preset["mxn_config"]["exits"]) >= 2 and len(preset["focus_config"]["exits"]) == 1
    assert result["memory"]["ratio"] > 0
    workers = result["workers"]
    assert set(workers["runs"]) == {"process", "workers_1", "workers_2"}
    assert workers["same_objects"], "one process and 1 or 2 Dask workers index the same objects"
    assert all(run["ranges"] >= 2 and run["frames_per_s"] > 0 for run in workers["runs"].values())
    assert workers["speedup_2_vs_1_workers"] > 0
    assert {"speedup_vs_focus", "model_time_ratio_vs_gt_all", "floor_fraction", "memory_ratio"} <= set(
        result["targets_met"]
    )


#: The per-preset keys docs/BENCHMARKS.md cites from scripts/bench_query.py.
QUERY_KEYS = ("precision", "recall", "speedup_vs_focus", "speedup_vs_all", "gt_calls_mxn", "gt_calls_focus",
              "precision_focus", "recall_focus", "exit_decided_share", "index_recall",
              "cluster_impurity", "precision_pooled", "recall_pooled", "speedup_vs_focus_pooled",
              "gt_calls_mxn_pooled", "exit_decided_share_pooled", "speedup_vs_focus_fallback",
              "precision_fallback", "recall_fallback", "speedup_vs_focus_strict", "precision_strict",
              "recall_strict", "gt_calls_mxn_strict")  # fmt: skip


@pytest.mark.slow
def test_bench_query(tmp_path):
    result = _run("bench_query.py", tmp_path)
    assert set(result["presets"]) == {"quiet_road", "highway", "downtown", "night"}
    for name, preset in result["presets"].items():
        assert set(QUERY_KEYS) <= set(preset), name
        for key in ("precision", "recall", "precision_focus", "recall_focus", "index_recall"):
            assert 0.0 <= preset[key] <= 1.0, (name, key)
        assert 0.0 <= preset["exit_decided_share"] <= 1.0 and 0.0 <= preset["cluster_impurity"] <= 1.0
        assert preset["speedup_vs_focus"] > 0 and preset["speedup_vs_all"] > 0, name
        # the exits only ever spare GT-CNN calls; focus asks the GT-CNN about every candidate
        assert 0 <= preset["gt_calls_mxn"] <= preset["gt_calls_focus"] == preset["candidates"], name
        assert 0 <= preset["gt_calls_mxn_pooled"] <= preset["candidates"], name
        # all mode re-crops every object from the video: it must reproduce the gt-all index
        assert preset["modes"]["all"]["precision_micro"] >= 0.99, name
        assert preset["modes"]["all"]["recall_micro"] >= 0.99, name
        # focus judges a cluster by its representative: its answer is the one cluster purity predicts
        assert all(preset["focus_matches_prediction"].values()), name
        for mode, median in preset["modes"].items():
            assert median["seconds"] > 0, (name, mode)
        assert 0 <= preset["gt_calls_mxn_strict"] <= preset["candidates"], name
        for key in ("target", "target_pooled", "target_fallback", "target_strict"):
            target = preset[key]
            assert set(target) == {"applies", "met", "why_not", "labels_focus_below_target",
                                   "met_where_focus_meets"}, (name, key)  # fmt: skip
            # the labels named are exactly those whose Focus answer misses 99% / 99%
            capped = {
                label for label, r in preset["per_label"].items()
                if min(r["modes"]["focus"]["precision"], r["modes"]["focus"]["recall"]) < 0.99
            }  # fmt: skip
            assert set(target["labels_focus_below_target"]) == capped, (name, key)
            if target["met"]:
                assert target["met_where_focus_meets"], (name, key)
    assert result["sweep"]["downtown"], "the quick run sweeps the cluster threshold on downtown"
    for point in result["sweep"]["downtown"]:
        assert point["candidates"] > 0 and 0.0 <= point["focus"]["precision_min"] <= 1.0
    for key in ("targets_met", "targets_met_pooled", "targets_met_fallback", "targets_met_strict"):
        assert {"speedup_vs_focus", "precision", "recall", "mxn_3x_at_99_99",
                "mxn_3x_at_99_99_where_focus_meets"} <= set(result[key])  # fmt: skip
    assert result["pooled_tuning"]["stage_targets"] == {"precision": 0.99, "recall": 0.99}
    assert result["pooled_tuning_strict"]["stage_targets"] == {"precision": 0.995, "recall": 0.995}
    drawn = _plot([tmp_path / "result.json"], tmp_path / "plots")  # the docs' plot of this JSON
    assert drawn.returncode == 0, drawn.stderr
    assert is_png(tmp_path / "plots" / "bench_query.png")
    assert result["pooled_tuning"]["samples"] > 0, "the pooled thresholds are tuned on every preset's clip"


#: The keys docs/BENCHMARKS.md cites from scripts/bench_faces.py.
FACE_KEYS = ("accuracy_mxn", "accuracy_oracle", "speedup_recognition", "speedup_end_to_end", "hit_rate_exit0")


@pytest.mark.slow
def test_bench_faces(tmp_path):
    result = _run("bench_faces.py", tmp_path)
    assert set(FACE_KEYS) <= set(result)
    assert result["faces"] > 50 and result["detection_recall"] > 0.9
    for key in ("accuracy_mxn", "accuracy_oracle", "accuracy_mxn_last_exit_oracle", "hit_rate_exit0"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["speedup_recognition"] > 0 and result["speedup_end_to_end"] > 0
    # every face is decided by exactly one exit or the oracle
    assert sum(result["hit_rate_per_exit"]) + result["oracle_rate"] == pytest.approx(1.0)
    assert result["oracle_calls"] < result["faces"]  # the exits spared some oracle calls
    assert len(result["alpha_sweep"]) > 3 and (tmp_path / "result.png").read_bytes()[:4] == b"\x89PNG"
    assert {"speedup_recognition", "accuracy_within_1_point_of_oracle"} == set(result["targets_met"])
    done = _plot([tmp_path / "result.json"], tmp_path / "plots")
    assert done.returncode == 0 and is_png(tmp_path / "plots" / "bench_faces.png"), done.stderr


#: The keys docs/BENCHMARKS.md cites from scripts/bench_scale.py.
SCALE_KEYS = ("lookup_ms_at_1e6", "lookup_crops_ms_at_1e6", "crop_fetch_ms_at_1e6",
              "insert_per_object_us_at_1e6", "growth_exponent", "largest_objects",
              "lookup_video_growth_exponent", "insert_growth_exponent")  # fmt: skip


def positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def test_bench_scale(tmp_path):
    result = _run("bench_scale.py", tmp_path)
    assert set(SCALE_KEYS) <= set(result)
    steps = result["steps"]
    assert [s["objects"] for s in steps] == result["preset"]["steps"] == [10_000, 30_000, 100_000]
    assert result["quick"] and result["largest_objects"] == 100_000  # where the "_at_1e6" keys come from
    counts = result["counts"]
    assert counts["objects"] == 100_000 and counts["clusters"] == result["largest_clusters"]
    for k, step in enumerate(steps):
        lookup, index = step["lookup"], step["cluster_index"]
        assert step["videos"] == 4 * (k + 1)
        assert 0.05 < step["clusters"] / step["objects"] < 0.2  # ~objects/10 clusters
        timings = (*(lookup[f"{key}{part}_ms"] for key in ("window", "video", "all_videos")
                     for part in ("", "_crops", "_crop_fetch")),
                   step["insert_per_object_us"], index["build_s"], index["search_ms"])  # fmt: skip
        for value in timings:
            assert positive(value), step
        assert 0 < lookup["window_candidates"] <= lookup["video_candidates"] < lookup["all_videos_candidates"]
        assert index["centroids"] == lookup["all_videos_candidates"] and index["kind"] == "flat"
    for key in ("lookup_ms", "lookup_crops_ms", "crop_fetch_ms", "insert_per_object_us"):
        assert positive(result[f"{key}_at_1e6"]), key
    for key in ("growth_exponent", "lookup_video_growth_exponent", "insert_growth_exponent"):
        assert math.isfinite(result[key]), key
    for point in [*result["sweep"], result["search"]]:
        assert point["flat"]["nprobe"] is None and point["ivf"]["nprobe"] >= 1
        assert positive(point["flat"]["search_ms"]) and positive(point["ivf"]["search_ms"])
        assert 0.9 <= point["recall_at_1"] <= 1.0 and 0.0 <= point["recall_at_1_random"] <= 1.0
    assert result["search"]["centroids"] == steps[-1]["cluster_index"]["centroids"]
    indexes = result["lookup_indexes"]  # the schema's, dropped for "without" and re-created
    assert set(indexes["indexes"]) == {"ix_clusters_label_video_time", "ix_clusters_label_run_size"}
    for key in ("window", "window_crops", "window_crop_fetch", "video", "all_videos", "cluster_index_cached"):
        assert positive(indexes["without"][f"{key}_ms"]) and positive(indexes["with"][f"{key}_ms"]), key
        assert positive(indexes["speedup"][key]), key
    for key in ("window", "video", "all_videos"):  # the same answers, whichever index SQL uses
        assert indexes["with"][f"{key}_candidates"] == indexes["without"][f"{key}_candidates"], key
    assert positive(indexes["create_s"])
    assert set(result["targets_met"]) == {"lookup_within_10_ms"}


def _plot(paths: list[Path], out: Path) -> subprocess.CompletedProcess:
    """scripts/plot_benchmarks.py on ``paths``, writing into ``out``."""
    command = [sys.executable, str(SCRIPTS / "plot_benchmarks.py"), *map(str, paths), "--out", str(out)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_benchmarks(tmp_path):
    """A small bench_scale run (a few seconds) drawn as a PNG; a JSON of no known benchmark is refused."""
    _run("bench_scale.py", tmp_path, "--steps", "2e3,5e3")
    done = _plot([tmp_path / "result.json"], tmp_path / "plots")
    assert done.returncode == 0, done.stderr
    assert is_png(tmp_path / "plots" / "bench_scale.png")
    unknown = tmp_path / "other.json"
    unknown.write_text(json.dumps({"steps": [], "hello": 1}))
    done = _plot([tmp_path / "result.json", unknown], tmp_path / "refused")
    assert done.returncode == 1 and f"{unknown}: not the JSON of a known benchmark" in done.stderr
    assert not (tmp_path / "refused").exists()  # every file is checked before anything is drawn


#: The keys docs/BENCHMARKS.md cites from scripts/bench_faults.py.
FAULT_KEYS = ("kill_trials", "kill_identical", "bad_inputs", "bad_inputs_clean_error", "concurrent_trials",
              "concurrent_ok")  # fmt: skip


def _unclean(result: dict) -> list[str]:
    """Every case the campaign found unclean, one line each: what the assertion messages show."""
    lines = [f"{c['name']}: {'; '.join(c['problems'])} [{c['command']}]" for c in result["unclean"]]
    for backend in ("sqlite", "postgresql"):
        for trial in result["concurrent"][backend]:
            if not trial["ok"]:
                lines.append(f"{backend} {trial['trial']}: {json.dumps(trial)[:600]}")
    for job, kills in result["kills"].items():
        differing = [t for t in kills["details"] if not t["identical"]]
        lines += [
            f"{job} trial {t['trial']}: {t.get('differs')}: {t.get('final_output_tail')}" for t in differing
        ]
    return lines


@pytest.mark.slow
def test_bench_faults(tmp_path):
    """Killed runs resume to the reference index; bad inputs get one-line errors; concurrent writers agree."""
    result = _run("bench_faults.py", tmp_path)
    assert set(FAULT_KEYS) <= set(result)
    for job in ("ingest", "faces"):
        kills = result["kills"][job]
        assert kills["trials"] == 3 and kills["kills_landed"] >= 1, job
    assert result["kill_trials"] == 6 and result["bad_inputs"] >= 12
    # only a read-only case may be skipped (root where chattr +i does not work), never on a harness error
    assert all("read-only" in skipped["why"] for skipped in result["skipped"]), result["skipped"]
    assert result["bad_inputs_by_kind"].keys() == {"video", "model", "database"}
    assert len(result["concurrent"]["sqlite"]) == len(result["concurrent"]["postgresql"]) == 1
    problems = "\n".join(_unclean(result))
    # the fault-tolerance claims themselves (README: nothing lost, nothing doubled; one Error: line)
    assert result["kill_identical"] == result["kill_trials"], problems
    assert result["bad_inputs_clean_error"] == result["bad_inputs"], problems
    assert result["concurrent_ok"] == result["concurrent_trials"], problems
