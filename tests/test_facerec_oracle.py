"""dlib's face embedder, galleries and the gallery oracle, on real faces that ship in packages.

dlib's ResNet takes about 0.1 s a face on a laptop core, so the faces are
embedded once per module and kept few.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from mxn.datasets.sample_faces import ASTRONAUT_FACE, astronaut, lfw_faces
from mxn.facerec.detection import aligned_crops
from mxn.facerec.oracle import (
    TOLERANCE,
    FaceEmbedder,
    Gallery,
    GalleryError,
    GalleryOracle,
    Oracle,
    face_distances,
    skipped_photos_message,
)

LFW_COUNT = 10
#: Where each upscaled 25x25 LFW face sits on its canvas, and a shifted, larger box around it.
LFW_BOX = np.array([[50, 50, 150, 150]])
LFW_MOVED = np.array([[45, 55, 160, 160]])


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return astronaut()


@pytest.fixture(scope="module")
def lfw_canvases() -> np.ndarray:
    """The first LFW faces upscaled to 100 px, each in the middle of a black 200x200 frame."""
    canvases = np.zeros((LFW_COUNT, 200, 200, 3), np.uint8)
    canvases[:, 50:150, 50:150] = lfw_faces(size=100)[:LFW_COUNT]
    return canvases


@pytest.fixture(scope="module")
def lfw_embeddings(embedder, lfw_canvases) -> np.ndarray:
    return np.concatenate([embedder.embed(c, LFW_BOX) for c in lfw_canvases])


def alice_smaller(image: np.ndarray) -> np.ndarray:
    """The astronaut at 0.7x, shifted right and down on a grey frame."""
    return cv2.warpAffine(
        image, np.float32([[0.7, 0, 60], [0, 0.7, 40]]), (512, 512), borderValue=(90, 90, 90)
    )


def test_embeddings_are_128d_and_unit_ish(embedder, image, lfw_embeddings):
    e = embedder.embed(image, ASTRONAUT_FACE[None])
    assert e.shape == (1, 128) and e.dtype == np.float32
    norms = np.linalg.norm(np.vstack([e, lfw_embeddings]), axis=1)
    assert np.all((norms > 0.8) & (norms < 2.0))  # dlib's descriptors are not normalised, but close
    assert embedder.embed(image, np.zeros((0, 4))).shape == (0, 128)
    assert embedder.embed_crops(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0, 128)


def test_a_crop_embeds_like_the_face_in_its_frame(embedder, image):
    """The oracle's input is the aligned 112x112 crop: it must embed as dlib embeds the full frame."""
    full = embedder.embed(image, ASTRONAUT_FACE[None])
    crop = embedder.embed_crops(aligned_crops(image, ASTRONAUT_FACE[None]))
    assert face_distances(full, crop)[0, 0] < 0.15
    with pytest.raises(ValueError, match="batch"):
        embedder.embed_crops(np.zeros((112, 112, 3), np.uint8))


def test_the_same_face_moved_and_scaled_stays_within_tolerance(embedder, image, lfw_canvases, lfw_embeddings):
    moved = alice_smaller(image)
    box = ASTRONAUT_FACE * 0.7 + [60, 40, 60, 40]
    d = face_distances(embedder.embed(image, ASTRONAUT_FACE[None]), embedder.embed(moved, box[None]))
    assert d[0, 0] < TOLERANCE / 2
    again = np.concatenate([embedder.embed(c, LFW_MOVED) for c in lfw_canvases])
    assert np.all(np.diag(face_distances(lfw_embeddings, again)) < TOLERANCE)


def test_different_people_are_mostly_beyond_tolerance(lfw_embeddings):
    d = face_distances(lfw_embeddings, lfw_embeddings)
    pairs = d[np.triu_indices(len(d), 1)]
    assert (pairs > TOLERANCE).mean() >= 0.8  # 25x25 sources blur some people together


def test_face_distances_are_euclidean():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 128)), rng.normal(size=(4, 128))
    np.testing.assert_allclose(face_distances(a, b), np.linalg.norm(a[:, None] - b[None], axis=2), atol=1e-9)


# -- galleries -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cast(tmp_path_factory, image, lfw_canvases) -> Path:
    """cast/Alice (two photos and one without a face), cast/Bob (one LFW face), cast/Carol (a broken file)."""
    root = tmp_path_factory.mktemp("cast")
    for name in ("Alice", "Bob", "Carol"):
        (root / name).mkdir()
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(root / "Alice" / "portrait.jpg"), bgr)
    cv2.imwrite(str(root / "Alice" / "smaller.png"), cv2.cvtColor(alice_smaller(image), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(root / "Alice" / "wall.png"), np.full((300, 400, 3), 200, np.uint8))
    (root / "Alice" / "notes.txt").write_text("not a photo: ignored")
    cv2.imwrite(str(root / "Bob" / "bob.png"), lfw_canvases[0])
    (root / "Carol" / "carol.jpg").write_bytes(b"\xff\xd8 this is not a JPEG")
    return root


@pytest.fixture(scope="module")
def gallery(cast, embedder) -> Gallery:
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said to the caller's log, not as a Python warning
        loaded = Gallery.from_folder(cast, embedder=embedder, log=lines.append)
    assert lines == [
        f"gallery {cast}: skipped 2 photo(s): 1 unreadable (Carol/carol.jpg), "
        "1 without a face (Alice/wall.png); no usable photo left for Carol"
    ]
    return loaded


def test_gallery_embeds_the_largest_face_of_each_usable_photo(gallery):
    assert gallery.names == ["Alice", "Alice", "Bob"] and gallery.people == ["Alice", "Bob"]
    assert gallery.embeddings.shape == (3, 128)
    assert [Path(s).name for s in gallery.sources] == ["portrait.jpg", "smaller.png", "bob.png"]
    assert face_distances(gallery.embeddings[:1], gallery.embeddings[1:2])[0, 0] < TOLERANCE


def test_missing_or_empty_galleries_are_errors(tmp_path, embedder, caplog):
    with pytest.raises(GalleryError, match="no such gallery folder"):
        Gallery.from_folder(tmp_path / "nowhere", embedder=embedder)
    with pytest.raises(GalleryError, match="no person folders"):
        Gallery.from_folder(tmp_path, embedder=embedder)
    (tmp_path / "Dave").mkdir()
    (tmp_path / "Dave" / "broken.png").write_bytes(b"nothing")
    with caplog.at_level(logging.WARNING), pytest.raises(GalleryError, match="no usable photo"):
        Gallery.from_folder(tmp_path, embedder=embedder)  # no log given: the logging module's
    [record] = caplog.records
    assert record.name == "mxn.facerec.oracle" and record.getMessage() == (
        f"gallery {tmp_path}: skipped 1 photo(s): 1 unreadable (Dave/broken.png); "
        "no usable photo left for Dave"
    )


def test_unreadable_training_images_are_one_line_too(tmp_path, caplog):
    """Like a gallery's photos, ``mxn train``'s unreadable images are said in a line, not a UserWarning."""
    from mxn.images import load_dataset

    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / "ok.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "dog" / "bad.jpg").write_bytes(b"not a JPEG")
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_dataset(tmp_path, 8, log=lines.append)["all"]) == 2
        with caplog.at_level(logging.WARNING):
            load_dataset(tmp_path, 8)
    assert lines == [f"{tmp_path}: skipped 1 unreadable image(s) (dog/bad.jpg)"]
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("mxn.images", lines[0])]


def test_skipped_photos_are_named_a_few_and_counted():
    line = skipped_photos_message("cast", [f"A/{k}.jpg" for k in range(5)], [])
    assert line == "gallery cast: skipped 5 photo(s): 5 unreadable (A/0.jpg, A/1.jpg, A/2.jpg, and 2 more)"


# -- the oracle ----------------------------------------------------------------------------------------


def axis(k: int, length: float = 1.0) -> np.ndarray:
    v = np.zeros(128, np.float32)
    v[k] = length
    return v


def test_unknown_faces_get_stable_names(embedder):
    oracle = GalleryOracle(Gallery(["Alice", "Bob"], np.stack([axis(0), axis(1)])), embedder=embedder)
    stranger, other = axis(2), axis(3)
    names = oracle.name_embeddings(
        np.stack([axis(0) + 0.1 * axis(5), stranger, stranger + 0.3 * axis(6), other])
    )
    assert names == ["Alice", "unknown-1", "unknown-1", "unknown-2"]
    assert oracle.name_embeddings(np.stack([other, stranger, axis(1)])) == ["unknown-2", "unknown-1", "Bob"]
    assert list(oracle.unknowns) == ["unknown-1", "unknown-2"]
    np.testing.assert_array_equal(oracle.unknowns["unknown-1"], stranger)  # the first sighting is kept
    assert oracle.calls == 7
    assert GalleryOracle(Gallery([], np.zeros((0, 128))), embedder=embedder).name_embeddings(stranger) == [
        "unknown-1"
    ]
    with pytest.raises(ValueError, match="one 128-D embedding per name"):
        Gallery(["Alice", "Bob"], axis(0))
    with pytest.raises(ValueError, match="tolerance"):
        GalleryOracle(Gallery([], np.zeros((0, 128))), tolerance=0, embedder=embedder)


def test_the_gallery_oracle_names_real_crops(gallery, embedder, image, lfw_canvases):
    oracle: Oracle = GalleryOracle(gallery, embedder=embedder)
    alice = aligned_crops(image, ASTRONAUT_FACE[None])[0]
    stranger = aligned_crops(lfw_canvases[1], LFW_BOX)[0]
    stranger_moved = aligned_crops(lfw_canvases[1], LFW_MOVED)[0]
    bob = aligned_crops(lfw_canvases[0], LFW_MOVED)[0]
    assert [oracle(alice), oracle(stranger), oracle(bob), oracle(stranger_moved)] == [
        "Alice",
        "unknown-1",
        "Bob",
        "unknown-1",
    ]
    assert oracle.identify(image, ASTRONAUT_FACE[None]) == ["Alice"]


def test_any_callable_can_be_the_oracle():
    def by_brightness(face: np.ndarray) -> str:
        return "bright" if face.mean() > 128 else "dark"

    oracle: Oracle = by_brightness
    assert oracle(np.full((112, 112, 3), 200, np.uint8)) == "bright"
