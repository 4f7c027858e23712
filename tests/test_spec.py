import pytest

from mxn.spec import DEFAULT_EXITS, NetworkSpec, SpecError, parse_exits


def test_defaults_follow_the_dissertation():
    assert NetworkSpec().exits == (1, 2, 4, 6, 8)
    assert NetworkSpec(backbone="mobilenet_v1").exits == (3, 5, 7, 9, 11)
    assert NetworkSpec().num_exits == 5
    assert DEFAULT_EXITS["resnet18"] == (1, 2, 4, 6, 8)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backbone": "vgg"}, "unknown backbone"),
        ({"head": "regression"}, "unknown head"),
        ({"num_classes": 1}, "num_classes"),
        ({"input_size": 8}, "input_size"),
        ({"width": 0}, "width"),
        ({"exits": (0, 2)}, "exit positions 1..8"),
        ({"exits": (2, 9)}, "exit positions 1..8"),
        ({"exits": (4, 2)}, "strictly increasing"),
        ({"exits": (2, 2)}, "strictly increasing"),
        ({"exits": ()}, "at least one exit"),
        ({"dropout": 1.0}, "dropout"),
        ({"stem": "huge"}, "unknown stem"),
    ],
)
def test_bad_parameters_fail_early_with_a_clear_message(changes, message):
    with pytest.raises(SpecError, match=message):
        NetworkSpec(**changes)


def test_mobilenet_has_thirteen_positions():
    assert NetworkSpec(backbone="mobilenet_v1", exits=(13,)).exits == (13,)
    with pytest.raises(SpecError, match=r"1\.\.13"):
        NetworkSpec(backbone="mobilenet_v1", exits=(14,))


def test_dict_round_trip_and_unknown_fields():
    spec = NetworkSpec(backbone="mobilenet_v1", width=0.5, input_size=64, exits=(3, 7), head="embedding")
    assert NetworkSpec.from_dict(spec.to_dict()) == spec
    data = spec.to_dict() | {"colour": "red"}
    with pytest.raises(SpecError, match="unknown network spec fields"):
        NetworkSpec.from_dict(data)
    with pytest.raises(SpecError, match="version"):
        NetworkSpec.from_dict(spec.to_dict() | {"spec_version": 99})


def test_parse_exits():
    assert parse_exits("1, 2,4") == (1, 2, 4)
    with pytest.raises(SpecError):
        parse_exits("1,two")
