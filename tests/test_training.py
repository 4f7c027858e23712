import numpy as np
import pytest

from mxn.evaluation import agreement
from mxn.images import DatasetError, ImageSet, merge_datasets
from mxn.network import build_network
from mxn.runner import ExitRunner
from mxn.spec import NetworkSpec
from mxn.training import TrainConfig, start_from, teacher_labels, train_network


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


def test_start_from_copies_weights_at_any_input_size(trained, digit_data):
    model, _ = trained
    same = build_network(model.spec, seed=99)
    start_from(same, model, model.classes)
    x = digit_data.images[:16]
    np.testing.assert_allclose(
        ExitRunner(same).all_exits(x).outputs[-1], model.runner().all_exits(x).outputs[-1], atol=1e-5
    )
    larger = build_network(model.spec.replace(input_size=48), seed=99)
    start_from(larger, model, model.classes)
    for a, b in zip(larger.model.get_weights(), model.network.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"another architecture: width 0\.25 vs 0\.5"):
        start_from(build_network(model.spec.replace(width=0.5)), model, model.classes)
    with pytest.raises(ValueError, match="other classes"):
        start_from(build_network(model.spec), model, [*model.classes[:-1], "cat"])


def test_teacher_labels_are_the_teachers_top1(trained, digit_data):
    model, _ = trained
    splits = {"train": digit_data.subset(np.arange(40)), "test": digit_data.subset(np.arange(40, 60))}
    labelled = teacher_labels(splits, model)
    for name, split in labelled.items():
        top = model.runner().all_exits(splits[name].images).outputs[-1].argmax(axis=1)
        np.testing.assert_array_equal(split.labels, top)
        assert split.classes == model.classes and split.images is splits[name].images
        share = agreement(splits[name], split)
        assert share == pytest.approx(np.mean(top == splits[name].labels))
    with pytest.raises(ValueError, match="the teacher takes 32 px images"):
        teacher_labels(
            {"train": ImageSet(np.zeros((2, 48, 48, 3), np.uint8), np.zeros(2, int), ["a"])}, model
        )


def test_soft_teacher_targets_are_its_probabilities_and_a_student_learns_them(trained, digit_data):
    model, _ = trained
    splits = {"train": digit_data.subset(np.arange(256)), "val": digit_data.subset(np.arange(256, 320))}
    soft = teacher_labels(splits, model, soft=True)
    probabilities = model.runner().all_exits(splits["train"].images).outputs[-1]
    np.testing.assert_allclose(soft["train"].targets, probabilities, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(soft["train"].labels, probabilities.argmax(axis=1))
    part = soft["train"].subset(np.arange(10, 20))  # carving splits keeps each image's targets
    np.testing.assert_array_equal(part.targets, soft["train"].targets[10:20])
    assert teacher_labels(splits, model)["train"].targets is None  # hard labels by default

    student = build_network(NetworkSpec(input_size=32, width=0.25, exits=(2, 8)), seed=1)
    train, val = soft["train"], soft["val"]
    config = TrainConfig(
        loss="focal", epochs=3, augment=False, progress=False, optimizer="adam", learning_rate=0.003
    )
    result = train_network(student, train.images, train.targets, val.images, val.targets, config)
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert "val_exit_1_accuracy" in result.history  # top-1 agreement with the teacher, still measured
    with pytest.raises(ValueError, match="rows summing to 1"):
        train_network(student, train.images, train.targets * 2, config=config)
    with pytest.raises(ValueError, match="both be labels or both be probability vectors"):
        train_network(student, train.images, train.targets, val.images, val.labels, config)


def test_merged_data_sets_unite_classes_and_keep_every_image():
    rng = np.random.default_rng(0)

    def images(n: int) -> np.ndarray:
        return rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)

    a = {"train": ImageSet(images(3), np.array([0, 1, 1]), ["bus", "car"])}
    b = {
        "train": ImageSet(images(2), np.array([1, 0]), ["car", "van"]),
        "test": ImageSet(images(1), np.array([0]), ["car", "van"]),
    }
    merged = merge_datasets([a, b])
    assert merged["train"].classes == ["bus", "car", "van"]
    names = [merged["train"].classes[y] for y in merged["train"].labels]
    assert names == ["bus", "car", "car", "van", "car"]
    np.testing.assert_array_equal(merged["train"].images[3:], b["train"].images)
    assert len(merged["test"]) == 1 and merged["test"].classes[merged["test"].labels[0]] == "car"
    tiny = rng.integers(0, 256, (1, 4, 4, 3), dtype=np.uint8)
    small = {"train": ImageSet(tiny, np.array([0]), ["bus", "car"])}
    with pytest.raises(DatasetError, match="different sizes"):
        merge_datasets([a, small])
