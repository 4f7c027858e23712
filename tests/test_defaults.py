import pytest

from mxn.defaults import DEFAULT_MODELS, default_model_path, difficulty, load_default_model
from mxn.world.crops import SPLITS, CropConfig, build_crops
from mxn.world.sprites import CLASSES


@pytest.fixture(scope="module")
def world_test_crops(tmp_path_factory):
    """Fresh test crops from seeds the default models never saw."""
    root = tmp_path_factory.mktemp("crops")
    seconds = dict.fromkeys(SPLITS, 0.0) | {"test": 40.0}
    build_crops(root, CropConfig(size=64, seconds=seconds), seed=99, progress=False)
    return root


def test_default_models_ship_and_load():
    for name in DEFAULT_MODELS:
        model = load_default_model(name)
        assert sorted(model.classes) == sorted(CLASSES)
        assert model.spec.input_size == 64
    assert load_default_model("ingest").spec.num_exits == 5
    assert load_default_model("query").training["config"]["loss"] == "focal"
    gt = load_default_model("gt")
    assert gt.spec.num_exits == 1 and gt.spec.width > load_default_model("ingest").spec.width


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
