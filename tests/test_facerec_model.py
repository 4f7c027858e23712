"""The face MXN: embedding exits for Algorithm 3, distillation and identity training, model files."""

import numpy as np
import pytest

from mxn.facerec.labeller import FaceLabeller
from mxn.facerec.model import (
    DEFAULT_FACE_MODEL,
    FaceMXN,
    classifier_to_embedding,
    distill_config,
    exit_cosine,
    face_spec,
    nearest_identity_agreement,
    train_face_mxn_distill,
    train_face_mxn_identities,
    unit_rows,
)
from mxn.modelfile import ModelFileError, MXNModel, load_model, model_sha, save_model
from mxn.network import build_network
from mxn.spec import NetworkSpec, SpecError

SIZE = 32


def tiny_spec(**changes) -> NetworkSpec:
    return face_spec(width=0.125, input_size=SIZE, embedding_dim=16).replace(**changes)


@pytest.fixture(scope="module")
def tiny() -> FaceMXN:
    return FaceMXN(MXNModel(network=build_network(tiny_spec(), seed=0), classes=[]))


def faces(n: int, seed: int = 0, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def identity_data(n_per: int, people: int = 4, dim: int = 16, seed: int = 0):
    """Learnable toy faces: each "person" is a colour layout plus noise; the teacher is their vector.

    The people are always the same; ``seed`` draws new noise (new photos of them).
    """
    cast = np.random.default_rng(1234)
    layouts = cast.integers(0, 256, (people, 2, 2, 3)).astype(np.float32)
    directions = unit_rows(cast.normal(size=(people, dim)))
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(people), n_per)
    base = np.kron(layouts[labels], np.ones((1, SIZE // 2, SIZE // 2, 1)))
    images = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    teacher = directions[labels] * 1.4 + rng.normal(0, 0.05, (len(labels), dim))  # dlib-like norms
    return images, teacher.astype(np.float32), labels


def test_face_spec_is_a_mobilenet_with_embedding_exits():
    spec = face_spec()
    assert (spec.backbone, spec.head, spec.aggregation) == ("mobilenet_v1", "embedding", True)
    assert spec.input_size == 112 and spec.exits == (3, 5, 7, 9) and spec.embedding_dim == 128
    assert spec.stem == "imagenet" and tiny_spec().stem == "cifar"
    assert NetworkSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(SpecError, match="strictly increasing"):
        face_spec(exits=(5, 3))
    with pytest.raises(SpecError, match=r"exit positions 1\.\.13"):
        face_spec(exits=(3, 14))


def test_exit_features_are_lazy(tiny):
    calls = [0] * tiny.num_exits
    steps = tiny.runner._steps

    def counting(i):
        def step(state):
            calls[i] += 1
            return steps[i](state)

        return step

    tiny.runner._steps = [counting(i) for i in range(tiny.num_exits)]
    try:
        features = tiny.exit_features(faces(1)[0])
        first = next(features)
        features.close()  # what FaceLabeller does after a match at exit 0
        assert calls == [1, 0, 0, 0]
        assert first.shape == (16,)
        assert len(list(tiny.exit_features(faces(1)[0]))) == 4 and calls == [2, 1, 1, 1]
    finally:
        tiny.runner._steps = steps


def test_embed_all_matches_exit_features_and_is_unit_norm(tiny):
    crops = faces(5, seed=1, size=112)  # aligned crops are 112 px; the model resizes them
    batched = tiny.embed_all(crops)
    assert tiny.dims == [16] * 4 and [b.shape for b in batched] == [(5, 16)] * 4
    for k, crop in enumerate(crops):
        for i, f in enumerate(tiny.exit_features(crop)):
            np.testing.assert_allclose(f, batched[i][k], atol=1e-5)
    for b in batched:
        np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)


def test_distillation_points_exits_at_the_teacher():
    images, teacher, _ = identity_data(20)
    config = distill_config(epochs=8, batch_size=16, learning_rate=0.01, augment=False, seed=0)
    spec = tiny_spec(exits=(2, 4))  # two exits: half the graph to trace, the same code path
    model, report = train_face_mxn_distill(images, teacher, spec=spec, config=config, groups=None)
    before, after = report["heldout_cosine_untrained"], report["heldout_cosine"]
    assert len(after) == 2 and report["heldout_crops"] > 0
    assert np.mean(after) > np.mean(before) + 0.3, (before, after)
    assert model.training["face_model"]["kind"] == "distillation"
    # The report's figures are what the helpers measure (new crops from the same people).
    fresh, fresh_teacher, fresh_labels = identity_data(6, seed=1)
    face = FaceMXN(model)
    centre = report["teacher_centre"]
    assert np.mean(exit_cosine(face, fresh, fresh_teacher, centre)) > np.mean(before) + 0.3
    agreement = nearest_identity_agreement(face, fresh, fresh_teacher, fresh_labels.astype(str))
    assert len(agreement) == 2 and max(agreement) >= 0.8


def test_distillation_rejects_mismatched_teacher():
    images, teacher, _ = identity_data(4)
    with pytest.raises(ValueError, match="dims"):
        train_face_mxn_distill(images, teacher[:, :8], spec=tiny_spec())
    with pytest.raises(ValueError, match="one teacher vector per crop"):
        train_face_mxn_distill(images, teacher[:-1], spec=tiny_spec())


def test_identity_training_gives_an_embedding_face_model():
    images, _, labels = identity_data(12, people=3)
    config = distill_config(loss="ce", epochs=1, batch_size=16)
    spec = tiny_spec(exits=(2, 4))
    model, report = train_face_mxn_identities(images, labels, ["ann", "bob", "cy"], spec, config)
    face = FaceMXN(model)
    assert model.spec.head == "embedding" and face.dims == [3] * 2 and model.classes == ["ann", "bob", "cy"]
    assert len(report["heldout_top1"]) == 2
    np.testing.assert_allclose(np.linalg.norm(face.embed_all(images[:4])[0], axis=1), 1.0, atol=1e-4)


def test_classifier_conversion_keeps_each_exits_prediction():
    classifier = MXNModel(
        build_network(tiny_spec(head="classification", num_classes=5), seed=3), list("abcde")
    )
    probs = classifier.runner().all_exits(faces(8, seed=2)).outputs
    embedded = FaceMXN(classifier_to_embedding(classifier)).embed_all(faces(8, seed=2))
    for p, e in zip(probs, embedded, strict=True):
        np.testing.assert_array_equal(p.argmax(axis=1), e.argmax(axis=1))


def test_model_file_round_trip(tiny, tmp_path):
    path = save_model(tiny.model, tmp_path / "face.mxn")
    loaded = FaceMXN.from_file(path)
    assert loaded.sha == tiny.sha == model_sha(load_model(path))
    crops = faces(3, seed=4)
    for a, b in zip(loaded.embed_all(crops), tiny.embed_all(crops), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_a_classifier_file_is_not_a_face_model(tmp_path):
    classifier = MXNModel(build_network(tiny_spec(head="classification", num_classes=3)), ["a", "b", "c"])
    path = save_model(classifier, tmp_path / "cls.mxn")
    with pytest.raises(ModelFileError, match=r"cls\.mxn: not a face model: .*classification head"):
        FaceMXN.from_file(path)


def test_face_mxn_drives_the_labeller(tiny):
    people = faces(2, seed=5)
    names = iter(["ann", "bob"])
    labeller = FaceLabeller(tiny, lambda face: next(names), [1e-3] * 4, dims=tiny.dims)
    decisions = labeller.label_all([people[0], people[1], people[0]])
    assert [d.label for d in decisions] == ["ann", "bob", "ann"]
    assert decisions[2].exit == 0 and decisions[2].exits_computed == 1  # the same face stops at exit 0


def test_the_default_face_model_ships_with_tuned_thresholds():
    assert DEFAULT_FACE_MODEL.exists(), "build it with scripts/build_face_model.sh"
    face = FaceMXN.default()
    assert face.num_exits == 4 and face.spec.input_size == 112 and face.dims == [128] * 4
    assert DEFAULT_FACE_MODEL.stat().st_size < 2_000_000
    report = face.model.training["face_model"]
    assert min(report["heldout_cosine"]) > max(report["heldout_cosine_untrained"]) + 0.2
    thresholds = face.model.thresholds
    assert thresholds is not None and len(thresholds) == 4 and any(t is not None for t in thresholds)
    tuned = face.model.calibration["face_thresholds"]
    assert tuned["model_sha"] == face.sha and tuned["thresholds"] == thresholds
    assert tuned["evaluation"]["accuracy"] >= 0.99
