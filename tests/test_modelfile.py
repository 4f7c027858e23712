import json
import zipfile

import numpy as np
import pytest

from mxn.modelfile import CARD, WEIGHTS, ModelFileError, MXNModel, load_model, read_card, save_model
from mxn.network import build_network


@pytest.fixture
def saved(tmp_path, trained):
    model, _ = trained
    return save_model(model, tmp_path / "digits.mxn"), model


def test_round_trip_gives_identical_outputs(saved, digit_data):
    path, model = saved
    loaded = load_model(path)
    assert loaded.spec == model.spec
    assert loaded.classes == model.classes
    assert loaded.thresholds == model.thresholds
    assert loaded.training["config"]["epochs"] == 8
    images = digit_data.images[:20]
    for a, b in zip(
        loaded.runner().all_exits(images).outputs, model.runner().all_exits(images).outputs, strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_card_says_what_the_model_is(saved):
    path, _ = saved
    card = read_card(path)
    assert card["spec"]["exits"] == [1, 2, 4, 6, 8]
    assert card["preprocessing"]["input_size"] == 32
    assert len(card["thresholds"]) == 5
    assert card["training"]["versions"]["tensorflow"]
    assert len(card["weights_sha256"]) == 64


def _rewrite(path, card=None, weights=None, drop=None):
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    if card is not None:
        members[CARD] = card if isinstance(card, bytes) else json.dumps(card).encode()
    if weights is not None:
        members[WEIGHTS] = weights
    if drop:
        members.pop(drop)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def test_missing_and_wrong_kind_of_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "nope.mxn")
    with pytest.raises(ModelFileError, match="is a directory"):
        load_model(tmp_path)
    text = tmp_path / "notes.mxn"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not an mxn model file"):
        load_model(text)


def test_truncated_file(saved, tmp_path):
    path, _ = saved
    cut = tmp_path / "cut.mxn"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match=r"truncated|corrupt"):
        load_model(cut)


def test_corrupt_weights_fail_the_checksum(saved):
    path, _ = saved
    with zipfile.ZipFile(path) as zf:
        weights = bytearray(zf.read(WEIGHTS))
    weights[len(weights) // 2] ^= 0xFF
    _rewrite(path, weights=bytes(weights))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(path)


def test_card_that_does_not_match_the_weights(saved):
    path, _ = saved
    card = read_card(path)
    card["spec"]["width"] = 0.5  # same checksum, different architecture
    _rewrite(path, card=card)
    with pytest.raises(ModelFileError, match="do not fit the architecture"):
        load_model(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c | {"format": "something-else"}, "not an mxn model card"),
        (lambda c: c | {"format_version": 99}, "version 99 is not supported"),
        (lambda c: c | {"spec": c["spec"] | {"backbone": "vgg"}}, "architecture is invalid"),
        (lambda c: c | {"classes": ["a", "b"]}, "2 class names for a 10-class network"),
    ],
)
def test_bad_cards(saved, change, message):
    path, _ = saved
    _rewrite(path, card=change(read_card(path)))
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_card_that_is_not_json_and_missing_members(saved):
    path, _ = saved
    _rewrite(path, card=b"{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(path)
    _rewrite(path, card={}, drop=WEIGHTS)
    with pytest.raises(ModelFileError, match="missing"):
        load_model(path)


def test_saving_replaces_atomically(tmp_path, tiny_spec):
    model = MXNModel(build_network(tiny_spec), classes=list("abcd"))
    path = save_model(model, tmp_path / "m.mxn")
    save_model(model, path)  # overwrite in place
    assert load_model(path).classes == list("abcd")
    assert [p.name for p in tmp_path.iterdir()] == ["m.mxn"]  # no temp files left behind
    with pytest.raises(ValueError, match="3 class names"):
        MXNModel(build_network(tiny_spec), classes=list("abc"))
