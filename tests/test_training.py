import numpy as np
import pytest

from mxn.network import build_network
from mxn.spec import NetworkSpec
from mxn.training import TrainConfig, train_network


def test_tiny_mxn_beats_chance_on_every_deep_exit(trained):
    _model, report = trained
    accuracy = report.evaluation.exit_accuracy
    assert len(accuracy) == 5
    # Ten classes: chance is 10%. The deeper exits must be clearly better.
    assert accuracy[-1] > 0.5
    assert accuracy[2] > 0.2
    assert max(accuracy) >= accuracy[0]
    assert report.train.epochs_run >= 1
    history = report.train.history
    assert history["loss"][-1] < history["loss"][0]


def test_fit_report_splits_are_disjoint_and_complete(trained, digit_data):
    _, report = trained
    sizes = report.split_sizes
    assert set(sizes) == {"train", "val", "calibration", "test"}
    assert sum(sizes.values()) == len(digit_data)


def test_same_seed_same_first_step(digit_data):
    spec = NetworkSpec(input_size=32, width=0.25, exits=(2, 4))
    config = TrainConfig(epochs=1, progress=False, augment=False, seed=3)
    x, y = digit_data.images[:128], digit_data.labels[:128]
    weights = []
    for _ in range(2):
        net = build_network(spec, seed=3)
        train_network(net, x, y, config=config)
        weights.append(net.model.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_single_exit_network_trains(digit_data):
    spec = NetworkSpec(input_size=32, width=0.25, exits=(8,), aggregation=False)
    net = build_network(spec, seed=0)
    x, y = digit_data.images[:256], digit_data.labels[:256]
    result = train_network(net, x, y, config=TrainConfig(epochs=2, augment=False, progress=False))
    assert result.epochs_run == 2 and result.history["loss"][-1] < result.history["loss"][0]


def test_bad_training_input(tiny_spec, random_images):
    net = build_network(tiny_spec)
    labels = np.zeros(len(random_images), int)
    with pytest.raises(ValueError, match="labels must be integers in"):
        train_network(net, random_images, labels + 9, config=TrainConfig(progress=False))
    with pytest.raises(ValueError, match="images must have shape"):
        train_network(net, random_images[:, :16], labels, config=TrainConfig(progress=False))
    with pytest.raises(ValueError, match="37 images but 3 labels"):
        train_network(net, random_images, labels[:3], config=TrainConfig(progress=False))
    with pytest.raises(ValueError, match="cosine loss is for embedding heads"):
        train_network(net, random_images, labels, config=TrainConfig(loss="cosine", progress=False))
    with pytest.raises(ValueError, match="unknown optimizer"):
        TrainConfig(optimizer="rmsprop")


def test_embedding_heads_learn_by_distillation(random_images):
    spec = NetworkSpec(backbone="mobilenet_v1", input_size=32, width=0.25, head="embedding", embedding_dim=8)
    net = build_network(spec)
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(len(random_images), 8)).astype("float32")
    targets /= np.linalg.norm(targets, axis=1, keepdims=True)
    result = train_network(
        net,
        random_images,
        targets,
        config=TrainConfig(loss="cosine", epochs=3, augment=False, progress=False),
    )
    assert result.history["loss"][-1] < result.history["loss"][0]
