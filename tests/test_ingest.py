"""Ingest end to end on a short rendered traffic clip, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mxn.cli import main
from mxn.datasets.world.video import render_clip
from mxn.defaults import load_default_model
from mxn.ingest.config import IngestConfig
from mxn.ingest.extraction import ExtractorConfig
from mxn.ingest.pipeline import VideoIngest, ingest_videos
from mxn.media.video import VideoError
from mxn.storage.crop_codec import decode_crop
from mxn.storage.store import Store

#: Small, fast settings: 3 chunks over the 60-frame clip.
SMALL = IngestConfig(chunk_frames=20, extractor=ExtractorConfig(warmup=10), cluster_threshold=0.3)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """4 s of the highway preset at 320x180, 15 fps (60 frames)."""
    out = tmp_path_factory.mktemp("clips") / "highway.mp4"
    render_clip(out, "highway", seconds=4, seed=5, size=(320, 180), fps=15, progress=False)
    return out


@pytest.fixture(scope="session")
def ingest_model():
    return load_default_model("ingest")


def snapshot(store: Store, mode: str = "mxn") -> dict:
    """Everything an index holds, in a form that compares across databases."""
    objects = sorted((o.frame, o.box, tuple(sorted(o.labels))) for o in store.objects(mode=mode))
    clusters = []
    for label in store.labels(mode=mode):
        for c in store.clusters(label, mode=mode):
            members = tuple(sorted((m.frame, m.box) for m in store.cluster_members(c.id)))
            clusters.append((label, c.size, members))
    return {"objects": objects, "clusters": sorted(clusters)}


def test_ingest_indexes_and_clusters_objects(store_url, clip, ingest_model):
    with Store(store_url) as store:
        [result] = ingest_videos([clip], store, ingest_model, SMALL, progress=False)
        assert result.status == "done", result.error
        stats = result.stats
        assert stats["frames"] == 60 and stats["objects"] > 20
        objects = store.objects()
        assert len(objects) == stats["objects"]
        # the union of the top-2 labels of 5 exits: between 2 and 10 labels, no duplicates
        sizes = [len(o.labels) for o in objects]
        assert min(sizes) >= 2 and max(sizes) <= 10
        assert sum(sizes) == stats["indexing"]
        assert all(0 <= o.frame < 60 and o.time == pytest.approx(o.frame / 15) for o in objects)
        # every cluster holds only objects indexed under its label, and every
        # (object, label) pair is in exactly one cluster
        pairs = []
        for label in store.labels():
            for c in store.clusters(label):
                members = store.cluster_members(c.id)
                assert len(members) == c.size and all(label in m.labels for m in members)
                crop = decode_crop(c.representative_crop)
                assert crop.shape == (SMALL.crop_size, SMALL.crop_size, 3)  # kept larger than the 64 px input
                pairs += [(m.id, label) for m in members]
        assert len(pairs) == len(set(pairs)) == stats["indexing"]
        assert stats["clusters"] == sum(len(store.clusters(label)) for label in store.labels())


def test_focus_and_gt_all_modes(tmp_path, clip, ingest_model):
    url = f"sqlite:///{tmp_path / 'modes.db'}"
    with Store(url) as store:
        focus = IngestConfig(mode="focus", exits=(0,), topk=1, chunk_frames=20, extractor=SMALL.extractor)
        [r] = ingest_videos([clip], store, ingest_model, focus, progress=False)
        assert r.stats["indexing"] == r.stats["objects"]  # one label each
        gt = IngestConfig(mode="gt-all", chunk_frames=20, extractor=SMALL.extractor)
        [g] = ingest_videos([clip], store, load_default_model("gt"), gt, progress=False)
        # the same detector finds the same objects whatever the model
        assert g.stats["objects"] == r.stats["objects"]
        assert all(len(o.labels) == 1 for o in store.objects(mode="gt-all"))
        assert len(store.objects(mode="focus")) == r.stats["objects"]


def test_killed_run_resumes_without_loss_or_duplicates(store_url, tmp_path, clip, ingest_model):
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    with Store(reference_url) as store:
        ingest_videos([clip], store, ingest_model, SMALL, progress=False)
        expected = snapshot(store)

    class SimulatedKillError(Exception):
        pass

    def kill_after_first_chunk(next_frame: int) -> None:
        raise SimulatedKillError(next_frame)

    with Store(store_url) as store:
        with pytest.raises(SimulatedKillError):
            VideoIngest(store, ingest_model, SMALL, progress=False, on_chunk=kill_after_first_chunk).ingest(
                clip
            )
        [run] = store.runs()
        assert run.status == "running" and store.ranges(run.id)[0].next_frame == 20
        assert store.objects() == []  # an unfinished run is invisible to queries
        result = VideoIngest(store, ingest_model, SMALL, progress=False).ingest(clip)
        assert result.status == "done" and result.resumed_from == 20
        assert snapshot(store) == expected
        assert len(store.runs()) == 1


def test_sigkilled_process_resumes(tmp_path, clip):
    """A real SIGKILL after the first committed chunk, then the CLI run again."""
    db = tmp_path / "killed.db"
    script = textwrap.dedent(
        f"""
        import os, signal
        from mxn.ingest.config import IngestConfig
        from mxn.ingest.extraction import ExtractorConfig
        from mxn.ingest.pipeline import VideoIngest
        from mxn.defaults import load_default_model
        from mxn.storage.store import Store
        config = IngestConfig(chunk_frames=20, extractor=ExtractorConfig(warmup=10))
        store = Store("sqlite:///{db}")
        kill = lambda frame: os.kill(os.getpid(), signal.SIGKILL)
        model = load_default_model("ingest")
        VideoIngest(store, model, config, progress=False, on_chunk=kill).ingest("{clip}")
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    args = [
        "ingest",
        str(clip),
        "--db",
        f"sqlite:///{db}",
        "--chunk-frames",
        "20",
        "--warmup",
        "10",
        "--quiet",
    ]
    with Store(f"sqlite:///{db}") as store:
        [run] = store.runs()
        assert run.status == "running" and store.ranges(run.id)[0].next_frame == 20
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert "resumed at frame 20" in out.output
    with Store(f"sqlite:///{db}") as store:
        runs = store.runs()
        assert [r.status for r in runs] == ["done"]
        assert len(store.objects()) == runs[0].stats["objects"]


def test_same_video_is_skipped_unless_forced(tmp_path, clip, ingest_model):
    url = f"sqlite:///{tmp_path / 'dup.db'}"
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(clip.read_bytes())
    with Store(url) as store:
        ingest_videos([clip], store, ingest_model, SMALL, progress=False)
        before = store.counts()
        [again] = ingest_videos([copy], store, ingest_model, SMALL, progress=False)
        assert again.status == "skipped"  # same content under another name
        assert store.counts() == before
        [forced] = ingest_videos([copy], store, ingest_model, SMALL, force=True, progress=False)
        assert forced.status == "done"
        assert store.counts() == before  # replaced, not doubled
        assert len(store.videos()) == 1 and [r.status for r in store.runs()] == ["done"]


def write_static_video(path: Path, frames: int = 40) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for _ in range(frames):
        writer.write(np.full((64, 96, 3), 90, np.uint8))
    writer.release()


def test_bad_videos_fail_clearly_and_the_rest_still_ingest(store_url, tmp_path, clip, ingest_model):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(20000))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    empty = tmp_path / "empty.mp4"
    write_static_video(empty)
    videos = [tmp_path / "missing.mp4", corrupt, truncated, clip, empty]
    with Store(store_url) as store:
        results = ingest_videos(videos, store, ingest_model, SMALL, progress=False)
        status = {r.video: r.status for r in results}
        assert status == {
            "missing.mp4": "failed",
            "corrupt.mp4": "failed",
            "truncated.mp4": "failed",
            "highway.mp4": "done",
            "empty.mp4": "done",
        }
        assert "no such file" in results[0].error
        no_objects = results[4].stats
        assert no_objects["frames"] == 40 and no_objects["objects"] == 0 and no_objects["clusters"] == 0


def test_truncated_avi_that_half_decodes_fails(tmp_path, ingest_model):
    """An MJPG AVI cut in half still opens and decodes its first frames: the run must fail, not pass short."""
    avi = tmp_path / "cut.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    rng = np.random.default_rng(0)
    for _ in range(60):
        writer.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    writer.release()
    data = avi.read_bytes()
    avi.write_bytes(data[: len(data) // 2])
    with Store(f"sqlite:///{tmp_path / 'cut.db'}") as store:
        with pytest.raises(VideoError, match="truncated"):
            VideoIngest(store, ingest_model, SMALL, progress=False).ingest(avi)
        # its first chunks were committed before the damage showed; nothing of it is kept
        assert not any(store.counts().values())


def test_cli_ingest_reports_and_exits_nonzero_on_failure(tmp_path, clip):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    stats = tmp_path / "stats.json"
    args = ["ingest", str(clip), str(tmp_path / "nope.mp4"), "--db", db, "--chunk-frames", "45"]
    out = CliRunner().invoke(main, [*args, "--quiet", "--json", str(stats)])
    assert out.exit_code == 1
    assert (
        "FAILED nope.mp4" in out.output
        and "highway.mp4" in out.output
        and "1 of 2 videos failed" in out.output
    )
    import json

    data = json.loads(stats.read_text())
    assert [v["status"] for v in data["videos"]] == ["done", "failed"]
    assert data["videos"][0]["stats"]["objects"] > 0
    bad = CliRunner().invoke(main, ["ingest", str(clip), "--db", db, "--exits", "0,9", "--quiet"])
    assert bad.exit_code == 1 and "no exit 9" in bad.output


def test_cli_ingest_writes_an_html_report(tmp_path, clip):
    report = tmp_path / "ingest.html"
    args = ["ingest", str(clip), "--db", f"sqlite:///{tmp_path / 'r.db'}", "--chunk-frames", "45", "--quiet"]
    out = CliRunner().invoke(main, [*args, "--html", str(report)])
    assert out.exit_code == 0, out.output
    assert f"wrote {report}" in out.output and "<html" in report.read_text()
