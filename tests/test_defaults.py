import pytest

from mxn.datasets.world.crop_set import SPLITS, CropConfig, build_crops
from mxn.datasets.world.sprites import CLASSES
from mxn.defaults import DEFAULT_MODELS, default_model_path, difficulty, load_default_model
from mxn.flops import exit_macs
from mxn.modelfile import model_sha


@pytest.fixture(scope="module")
def world_test_crops(tmp_path_factory):
    """Fresh test crops from seeds the default models never saw, at the GT-CNN's 128 px."""
    root = tmp_path_factory.mktemp("crops")
    seconds = dict.fromkeys(SPLITS, 0.0) | {"test": 40.0}
    build_crops(root, CropConfig(size=128, seconds=seconds), seed=99, progress=False)
    return root


def test_default_models_ship_and_load():
    models = {name: load_default_model(name) for name in DEFAULT_MODELS}
    for model in models.values():
        assert sorted(model.classes) == sorted(CLASSES)
    ingest, query, gt = models["ingest"], models["query"], models["gt"]
    assert ingest.spec.input_size == query.spec.input_size == 64 and gt.spec.input_size == 128
    assert ingest.spec.num_exits == query.spec.num_exits == 5 and gt.spec.num_exits == 1
    assert query.training["config"]["loss"] == "focal"
    # Focus's premise: the ground-truth CNN costs far more than the cheap exits it is gated by
    assert exit_macs(gt.network)[0] >= 10 * exit_macs(query.network)[-1] >= 10 * exit_macs(ingest.network)[-1]
    # the cheap MXNs learned the bundled GT-CNN's labels (Focus's specialisation)
    for cheap in (ingest, query):
        assert cheap.training["teacher"]["sha256"] == model_sha(gt)


def test_the_world_makes_the_trade_off_real(world_test_crops):
    figures = difficulty(world_test_crops)
    assert figures["items"] > 300
    # The cheap first exit is clearly wrong sometimes; the ground-truth CNN hardly ever.
    assert 0.55 <= figures["first_exit"] <= 0.93
    assert figures["gt"] >= 0.96
    assert figures["gt"] - figures["first_exit"] > 0.05


def test_unknown_default_model():
    with pytest.raises(ValueError, match="unknown default model"):
        default_model_path("yolo")
