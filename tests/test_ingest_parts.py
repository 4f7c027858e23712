"""The pieces of ingest on their own: decoding, extraction, aggregation, clustering."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mxn.ingest.aggregation import aggregate_topk, indexing_count, label_sets, topk_mask
from mxn.ingest.clustering import IncrementalClusterer, normalise
from mxn.ingest.config import ConfigError, IngestConfig
from mxn.ingest.extraction import FrameChangeTest, ObjectExtractor, chi_square, mask_to_boxes
from mxn.media.video import VideoError, check_complete, iter_frames, probe
from mxn.storage.crop_codec import decode_crop


def write_video(path, frames: list[np.ndarray], fps: float = 10.0) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def moving_square_frames(n: int = 40, size: tuple[int, int] = (96, 64)) -> list[np.ndarray]:
    """A grey, slightly noisy background with a red square moving right from frame 20."""
    rng = np.random.default_rng(0)
    w, h = size
    frames = []
    for i in range(n):
        f = np.full((h, w, 3), 110, np.uint8)
        f = np.clip(f + rng.normal(0, 2, f.shape), 0, 255).astype(np.uint8)
        if i >= 20:
            x = 5 + 3 * (i - 20)
            f[20:40, x : x + 20] = (220, 30, 30)
        frames.append(f)
    return frames


# -- decoding -------------------------------------------------------------------


def test_probe_and_stride(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, moving_square_frames())
    info = probe(path)
    assert (info.width, info.height, info.frame_count) == (96, 64, 40)
    assert info.fps == pytest.approx(10.0)
    assert len(info.content_hash) == 64
    frames = list(iter_frames(path, start=5, stop=20, stride=4))
    assert [f.index for f in frames] == [5, 9, 13, 17]
    assert frames[1].time == pytest.approx(0.9)
    assert frames[0].image.shape == (64, 96, 3)


def test_bad_files_get_clear_errors(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        probe(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        probe(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoError):
        probe(tmp_path / "junk.mp4")


def test_truncation_is_detected():
    info = probe_like(frame_count=100)
    check_complete(info, 99)
    with pytest.raises(VideoError, match="truncated"):
        check_complete(info, 50)


def probe_like(frame_count: int):
    from mxn.storage.records import VideoInfo

    return VideoInfo("v.mp4", "/v.mp4", "0" * 64, 10.0, 8, 8, frame_count, frame_count / 10)


# -- extraction -----------------------------------------------------------------


def test_mask_to_boxes_finds_blobs_above_min_area():
    mask = np.zeros((50, 50), np.uint8)
    mask[5:15, 10:30] = 255  # 200 px
    mask[30:32, 30:32] = 255  # 4 px, too small
    boxes = mask_to_boxes(mask, min_area=20)
    assert boxes.tolist() == [[10, 5, 30, 15]]
    assert mask_to_boxes(np.zeros((5, 5), np.uint8), 1).shape == (0, 4)


def test_extractor_finds_the_moving_square():
    frames = moving_square_frames()
    extractor = ObjectExtractor()
    for f in frames[:15]:
        extractor.warm(f)
    assert len(extractor.extract(frames[15])) == 0  # static background: nothing
    for f in frames[16:30]:
        extractor.extract(f)
    boxes = extractor.extract(frames[30])
    assert len(boxes) == 1
    x1, y1, x2, y2 = boxes[0]
    truth = (35, 20, 55, 40)  # frame 30: x = 5 + 3 * 10
    assert abs(x1 - truth[0]) <= 4 and abs(x2 - truth[2]) <= 4
    assert abs(y1 - truth[1]) <= 3 and abs(y2 - truth[3]) <= 3


def test_frame_change_test_skips_static_frames():
    frames = moving_square_frames()
    test = FrameChangeTest()
    assert test.changed(frames[0])  # the first frame is always kept
    assert not any(test.changed(f) for f in frames[1:20])  # sensor noise only
    assert test.changed(frames[20])  # the square appears
    assert chi_square(np.ones((1, 4)) / 4, np.ones((1, 4)) / 4)[0] == 0


# -- aggregation ----------------------------------------------------------------


def test_topk_union_over_exits():
    exit_a = np.array([[0.6, 0.3, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4]])
    exit_b = np.array([[0.5, 0.1, 0.4, 0.0], [0.0, 0.1, 0.2, 0.7]])
    assert topk_mask(exit_a, 2).tolist() == [[True, True, False, False], [False, False, True, True]]
    mask, scores = aggregate_topk([exit_a, exit_b], k=2)
    # object 0: {0,1} from a, {0,2} from b -> {0,1,2}; object 1: {2,3} from both
    assert mask.tolist() == [[True, True, True, False], [False, False, True, True]]
    assert indexing_count(mask) == 5
    assert scores[0, 0] == pytest.approx(0.6) and scores[1, 3] == pytest.approx(0.7)
    labels = label_sets(mask, scores, ["bus", "car", "van", "truck"])
    assert list(labels[0]) == ["bus", "van", "car"]  # best score first
    with pytest.raises(ValueError):
        topk_mask(exit_a, 5)


def test_agreeing_exits_keep_the_index_small():
    probs = np.eye(5)[[0, 1, 2, 3]] * 0.9 + 0.02
    mask, _ = aggregate_topk([probs, probs, probs], k=1)
    assert indexing_count(mask) == 4  # duplicates removed


# -- clustering -----------------------------------------------------------------


def unit(*v: float) -> np.ndarray:
    return normalise(np.array([v], np.float32))[0]


def test_clustering_joins_near_and_opens_far():
    c = IncrementalClusterer(threshold=0.1, max_active=10)
    crop = np.zeros((8, 8, 3), np.uint8)
    c.add(0, 0.0, ["car"], unit(1, 0, 0), crop)
    c.add(1, 0.1, ["car"], unit(1, 0.05, 0), crop)  # near: joins
    c.add(2, 0.2, ["car"], unit(0, 1, 0), crop)  # far: new cluster
    c.add(3, 0.3, ["van", "car"], unit(0, 1, 0.01), crop)  # joins car #1, opens van
    changed = c.take_changes()
    assert [(s.seq, s.label, s.size, s.new_members) for s in changed] == [
        (0, "car", 2, [0, 1]),
        (1, "car", 2, [2, 3]),
        (2, "van", 1, [3]),
    ]
    centroid = changed[0].centroid
    assert np.allclose(centroid, (unit(1, 0, 0) + unit(1, 0.05, 0)) / 2, atol=1e-6)
    assert all(np.array_equal(decode_crop(s.representative_crop), crop) for s in changed)
    assert c.take_changes() == []


def test_clustering_closes_the_stalest_cluster_when_full():
    c = IncrementalClusterer(threshold=0.01, max_active=2)
    crop = np.zeros((4, 4, 3), np.uint8)
    c.add(0, 0.0, ["car"], unit(1, 0, 0), crop)
    c.add(1, 1.0, ["car"], unit(0, 1, 0), crop)
    c.add(2, 2.0, ["car"], unit(1, 0, 0.01), crop)  # refreshes cluster 0
    c.add(3, 3.0, ["car"], unit(0, 0, 1), crop)  # full: closes cluster 1 (stalest)
    states = {s.seq: s for s in c.take_changes()}
    assert states[1].active is False and states[0].active and states[2].active
    assert c.open_clusters() == 2


def test_clustering_resumes_from_saved_state():
    crop = np.zeros((4, 4, 3), np.uint8)
    rng = np.random.default_rng(1)
    feats = normalise(rng.normal(size=(40, 6)))
    whole = IncrementalClusterer(threshold=0.8, max_active=3)
    for i, f in enumerate(feats):
        whole.add(i, float(i), ["car"], f, crop)
    expected = {s.seq: (s.size, s.centroid.tobytes()) for s in whole.take_changes()}

    first = IncrementalClusterer(threshold=0.8, max_active=3)
    for i, f in enumerate(feats[:20]):
        first.add(i, float(i), ["car"], f, crop)
    saved = first.take_changes()
    for s in saved:
        s.new_members = []
    second = IncrementalClusterer(threshold=0.8, max_active=3, clusters=saved)
    for i, f in enumerate(feats[20:], start=20):
        second.add(i, float(i), ["car"], f, crop)
    final = {s.seq: (s.size, s.centroid.tobytes()) for s in saved} | {
        s.seq: (s.size, s.centroid.tobytes()) for s in second.take_changes()
    }
    assert final == expected


def test_config_validation():
    with pytest.raises(ConfigError, match="unknown mode"):
        IngestConfig(mode="fast")
    with pytest.raises(ConfigError, match="exactly one exit"):
        IngestConfig(mode="focus", exits=(0, 1))
    with pytest.raises(ConfigError, match="no exit 7"):
        IngestConfig(exits=(1, 7)).resolve(5)
    resolved = IngestConfig(mode="gt-all", topk=3).resolve(1)
    assert resolved.exits == (0,) and resolved.topk == 1 and resolved.cluster_exit == 0
    assert IngestConfig(stride=4, chunk_frames=190).chunk_frames == 192
    with pytest.raises(ConfigError, match="warmup"):
        IngestConfig(chunk_frames=10)
    # representative crops are kept at crop_size, or at a larger model's own input size
    assert IngestConfig().crop_side(64) == 128 and IngestConfig(crop_size=96).crop_side(224) == 224
    with pytest.raises(ConfigError, match="crop_size must be >= 16"):
        IngestConfig(crop_size=8)
