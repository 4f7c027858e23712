import dataclasses
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mxn.cli import main
from mxn.datasets.world.crop_set import SPLITS, CropConfig, build_crops
from mxn.datasets.world.presets import PRESETS, get_preset
from mxn.datasets.world.render import TrafficWorld
from mxn.datasets.world.sprites import CLASSES
from mxn.datasets.world.video import read_truth, render_clip
from mxn.images import box_iou


def _clean(name: str):
    """A preset without the nuisances, so every changed pixel belongs to an object."""
    return dataclasses.replace(get_preset(name), noise=0.0, shake_px=0.0, cloud_shadows=False, trees=0)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_truth_matches_what_is_drawn(name):
    preset = _clean(name)
    world = TrafficWorld(preset, seed=3)
    for _ in range(300):
        world.step()
    m = world._scenery.margin
    background = world._scenery.background[m : m + world.height, m : m + world.width].astype(int)
    checked = 0
    for frame in world.frames(count=60, every=10):
        assert frame.image.shape == (360, 640, 3) and frame.image.dtype == np.uint8
        # At night dark bodies sit on a dark road: a smaller change counts.
        changed = np.abs(frame.image.astype(int) - background).max(axis=2) > (10 if preset.night else 40)
        allowed = np.zeros_like(changed)
        for obj in frame.objects:
            x1, y1, x2, y2 = obj.box
            assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 360
            assert obj.cls in preset.classes
            assert 0.0 <= obj.occluded <= 1.0 and 0.0 <= obj.truncated < 1.0
            shadow = (x2 - x1) // 12 + 8  # the drop shadow below the object
            allowed[max(0, y1 - 3) : y2 + shadow, max(0, x1 - 3) : x2 + 3] = True
            if obj.occluded == 0 and obj.truncated == 0 and (y2 - y1) >= 12:
                inside = changed[y1:y2, x1:x2].mean()
                assert inside > 0.25, f"{obj.cls} box holds almost nothing drawn ({inside:.2f})"
                checked += 1
        if name == "night":  # headlight glows reach beyond the body
            continue
        stray = changed & ~allowed
        assert stray.mean() < 0.001, f"{stray.sum()} changed pixels outside every box"
    assert checked > 0


def test_tracks_keep_their_class_and_move():
    world = TrafficWorld(get_preset("downtown"), seed=5)
    seen: dict[int, tuple[str, list[int]]] = {}
    for frame in world.frames(count=400, every=20):
        for obj in frame.objects:
            cls, xs = seen.setdefault(obj.track, (obj.cls, []))
            assert cls == obj.cls
            xs.append(obj.box[0])
    moving = [xs for _, xs in seen.values() if len(xs) >= 3]
    assert moving and all(xs[0] != xs[-1] for xs in moving)
    assert {c for c, _ in seen.values()} <= set(CLASSES)


def test_same_seed_same_video_and_different_seed_differs():
    def frames(seed):
        return [f.image for f in TrafficWorld(get_preset("highway"), seed=seed).frames(count=90, every=30)]

    a, b, c = frames(1), frames(1), frames(2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_presets_differ_as_the_cameras_should():
    assert PRESETS["quiet_road"].classes == ("car", "person")
    assert set(PRESETS["downtown"].classes) == set(CLASSES)
    assert PRESETS["night"].night
    with pytest.raises(ValueError, match="unknown camera preset"):
        get_preset("mars")


def test_clip_and_truth_file(tmp_path):
    clip = render_clip(
        tmp_path / "cam.mp4", "quiet_road", seconds=2.0, seed=1, size=(320, 180), progress=False
    )
    capture = cv2.VideoCapture(str(clip.video))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == clip.frames == 60
    header, frames = read_truth(clip.video)
    assert header["preset"] == "quiet_road" and header["fps"] == 30.0 and header["width"] == 320
    lines = list(frames)
    assert [line["frame"] for line in lines] == list(range(60))
    assert not list(tmp_path.glob(".*part*"))  # temp files renamed away
    (tmp_path / "bad.truth.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="not a world truth file"):
        read_truth(tmp_path / "bad.truth.jsonl")


def test_crops_splits_are_disjoint(tmp_path):
    config = CropConfig(size=32, seconds={s: 8.0 for s in SPLITS}, presets=("downtown",), warmup=8.0)
    manifest = build_crops(tmp_path, config, seed=0, progress=False)
    seeds = {split: {p.name.split("_")[1] for p in (tmp_path / split).rglob("*.png")} for split in SPLITS}
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not seeds[a] & seeds[b], f"{a} and {b} share a simulation"
    saved = json.loads((tmp_path / "manifest.json").read_text())
    assert saved["counts"] == manifest["counts"]
    for split in SPLITS:
        files = list((tmp_path / split).rglob("*.png"))
        assert len(files) == sum(manifest["counts"][split].values()) > 0
        assert cv2.imread(str(files[0])).shape == (32, 32, 3)


def test_blob_crops_are_what_ingest_finds_labelled_by_their_best_overlap(tmp_path):
    seconds = {"train": 4.0, "test": 3.0}
    config = CropConfig(size=32, seconds=seconds, presets=("highway",), warmup=2.0, source="blobs", every=5)
    manifest = build_crops(tmp_path, config, seed=2, progress=False)
    files = list((tmp_path / "train").rglob("*.png"))
    assert len(files) == sum(manifest["counts"]["train"].values()) > 0
    assert manifest["config"]["source"] == "blobs" and manifest["config"]["min_iou"] == 0.3
    # every crop's name ties it to a frame of the split's own simulation and to the truth track it overlaps
    assert all(p.parent.name in CLASSES and len(p.stem.split("_")) == 4 for p in files)
    with pytest.raises(ValueError, match="unknown crop source"):
        CropConfig(source="sky")
    # the difficulty check says why no model reaches its target on blobs
    checked = CliRunner().invoke(main, ["models", "check", str(tmp_path)])
    assert checked.exit_code == 0, checked.output
    assert "test crops: cheap first exit top-1" in checked.output and "these are blobs" in checked.output


def test_the_package_re_exports_its_names_loaded_on_first_use():
    """``from mxn.datasets.world import X`` works; the presets alone load no renderer, dlib or TensorFlow."""
    code = (
        "import sys\n"
        "from mxn.datasets.world import PRESETS, get_preset\n"
        "heavy = ['mxn.datasets.world.render', 'mxn.datasets.world.video', 'dlib', 'tensorflow']\n"
        "assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]\n"
        "assert get_preset('downtown') is PRESETS['downtown']\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    import mxn.datasets.world as world

    assert world.render_clip is render_clip and world.CropConfig is CropConfig and world.CLASSES is CLASSES
    assert world.TrafficWorld is TrafficWorld and set(world.__all__) <= set(dir(world))
    assert not hasattr(world, "read_truth")  # the clips' reader stays in world.video: movies have their own


def test_box_iou():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [100, 100, 110, 110]])
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 1.0, 0.0], [0.0, 0.0, 0.0]])


def test_a_tiny_model_learns_the_tiny_world(tmp_path):
    from mxn.images import load_dataset
    from mxn.spec import NetworkSpec
    from mxn.training import TrainConfig, fit_model

    seconds = {"train": 60.0, "val": 10.0, "calibration": 10.0, "test": 20.0}
    build_crops(tmp_path, CropConfig(size=32, seconds=seconds, presets=("downtown",)), seed=1, progress=False)
    splits = load_dataset(tmp_path, 32)
    config = TrainConfig(epochs=6, optimizer="adam", learning_rate=0.003, progress=False, seed=0)
    _, report = fit_model(NetworkSpec(input_size=32, width=0.25), splits, config, target_precision=0.9)
    test_labels = splits["test"].labels
    majority = np.bincount(test_labels).max() / len(test_labels)
    assert report.evaluation.exit_accuracy[-1] > majority + 0.2
