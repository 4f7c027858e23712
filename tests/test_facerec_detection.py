"""Face detection, landmarks and aligned crops on real faces that ship in packages."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from mxn.datasets.sample_faces import ASTRONAUT_FACE, astronaut, carphone_frames
from mxn.facerec import detection
from mxn.facerec.detection import (
    DETECTORS,
    aligned_crops,
    clip_boxes,
    detect_faces,
    face_landmarks_5,
    make_detector,
)
from mxn.images import box_iou


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    """No socket may connect: every model must load from the installed packages."""

    def refuse(*args, **kwargs):
        raise AssertionError("a face model tried to reach the network")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield


@pytest.fixture(scope="module")
def detectors(offline) -> dict:
    """One detector of each kind, built with the network refused."""
    detection.shape_predictor.cache_clear()
    detection.shape_predictor()  # the landmark model loads offline too
    return {name: make_detector(name) for name in DETECTORS}


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return astronaut()


@pytest.mark.parametrize("name", DETECTORS)
def test_each_detector_finds_the_astronaut(detectors, image, name):
    boxes = detectors[name].detect(image)
    assert boxes.dtype == np.int32 and boxes.ndim == 2 and boxes.shape[1] == 4
    assert box_iou(boxes, ASTRONAUT_FACE[None]).max() >= 0.6
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= 512) and np.all(boxes[:, 3] <= 512)


@pytest.mark.parametrize("name", DETECTORS)
def test_no_face_gives_an_empty_array(detectors, name):
    from skimage import data

    assert detectors[name].detect(np.full((360, 640, 3), 127, np.uint8)).shape == (0, 4)
    assert detectors[name].detect(data.coffee()).shape == (0, 4)


def test_hog_and_mtcnn_find_the_carphone_face(detectors):
    frames = carphone_frames(step=30)  # 4 frames, one 60-px face each
    for name in ("hog", "mtcnn"):
        counts = [len(detectors[name].detect(f)) for f in frames]
        assert counts == [1] * len(frames), name


def test_detect_faces_takes_a_name_or_a_detector(detectors, image):
    by_name = detect_faces(image, "haar")
    np.testing.assert_array_equal(by_name, detect_faces(image, detectors["haar"]))
    with pytest.raises(ValueError, match="unknown face detector 'yolo'"):
        detect_faces(image, "yolo")


def test_boxes_are_clipped_and_sorted():
    boxes = clip_boxes(
        [[50, 40, 90, 80], [-10, -5, 20, 30], [5, 200, 30, 260], [700, 0, 720, 10]], (240, 320)
    )
    np.testing.assert_array_equal(boxes, [[0, 0, 20, 30], [50, 40, 90, 80], [5, 200, 30, 240]])


def test_bad_images_are_refused(detectors):
    with pytest.raises(ValueError, match="uint8"):
        detectors["hog"].detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        detectors["hog"].detect(np.zeros((64, 64, 4), np.uint8))
    assert detectors["hog"].detect(np.zeros((64, 64), np.uint8)).shape == (0, 4)  # grey is fine


def test_a_missing_package_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "mtcnn", None)
    with pytest.raises(ImportError, match="pip install mtcnn"):
        make_detector("mtcnn")
    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(ImportError, match="'dlib-bin'"):
        make_detector("hog")


def test_five_landmarks_sit_on_the_face(detectors, image):
    points = face_landmarks_5(image, ASTRONAUT_FACE[None])
    assert points.shape == (1, 5, 2) and points.dtype == np.float32
    x1, y1, x2, y2 = ASTRONAUT_FACE
    assert np.all((points[0, :, 0] > x1) & (points[0, :, 0] < x2))
    assert np.all((points[0, :, 1] > y1) & (points[0, :, 1] < y2))
    eyes, nose = points[0, :4], points[0, 4]
    assert eyes[:, 1].max() < nose[1]  # eyes above the nose
    assert face_landmarks_5(image, np.zeros((0, 4))).shape == (0, 5, 2)


def test_aligned_crops_are_square_rgb(detectors, image):
    boxes = detectors["hog"].detect(image)
    crops = aligned_crops(image, boxes)
    assert crops.shape == (len(boxes), 112, 112, 3) and crops.dtype == np.uint8
    assert aligned_crops(image, ASTRONAUT_FACE[None], size=64).shape == (1, 64, 64, 3)
    assert aligned_crops(image, np.zeros((0, 4))).shape == (0, 112, 112, 3)
    # Alignment undoes an in-plane rotation: the crop of a rotated face matches the upright one.
    import cv2

    centre = ((ASTRONAUT_FACE[0] + ASTRONAUT_FACE[2]) / 2, (ASTRONAUT_FACE[1] + ASTRONAUT_FACE[3]) / 2)
    turned = cv2.warpAffine(image, cv2.getRotationMatrix2D(centre, 15, 1.0), (512, 512))
    upright = aligned_crops(image, ASTRONAUT_FACE[None])[0].astype(np.float64)
    rotated = aligned_crops(turned, ASTRONAUT_FACE[None])[0].astype(np.float64)
    unaligned = cv2.warpAffine(upright, cv2.getRotationMatrix2D((56, 56), 15, 1.0), (112, 112))
    assert np.abs(upright - rotated).mean() < 0.5 * np.abs(upright - unaligned).mean()
