"""Algorithm 3 on hand-made embeddings: match, miss, oracle call, running-average update, new identity."""

from __future__ import annotations

import numpy as np
import pytest

from mxn.facerec.database import ExitDatabase, FaceDatabase
from mxn.facerec.labeller import FaceLabeller

ALPHA = 0.25


class Exits:
    """Two exits whose features are fixed per face id; counts what was computed."""

    def __init__(self, features: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
        self.features, self.computed = features, []

    def __call__(self, face: np.ndarray):
        key = int(face[0])
        for i, f in enumerate(self.features[key]):
            self.computed.append((key, i))
            yield f


class Oracle:
    def __init__(self, names: dict[int, str]) -> None:
        self.names, self.calls = names, []

    def __call__(self, face: np.ndarray) -> str:
        self.calls.append(int(face[0]))
        return self.names[int(face[0])]


def face(key: int) -> np.ndarray:
    return np.array([key])


def vec(*values: float) -> np.ndarray:
    return np.array(values, np.float32)


def test_exit_database_running_average_and_search():
    db = ExitDatabase(2)
    assert db.nearest(vec(0, 0)) == (None, float("inf"))
    db.update("ann", vec(1, 0), ALPHA)
    db.update("bob", vec(0, 1), ALPHA)
    assert db.nearest(vec(0.9, 0.1))[0] == "ann"
    db.update("ann", vec(0, 0), ALPHA)  # (1 - a) * (1, 0) + a * (0, 0)
    np.testing.assert_allclose(db.vector("ann"), [0.75, 0.0])
    assert db.count("ann") == 2 and len(db) == 2
    name, distance = db.nearest(vec(0.75, 0.0))
    assert name == "ann" and distance == pytest.approx(0.0, abs=1e-6)
    assert db.nearest(vec(0, 3))[1] == pytest.approx(2.0)
    again = ExitDatabase.from_arrays(*db.to_arrays())
    assert again.labels == db.labels and again.nearest(vec(0.1, 0.9)) == db.nearest(vec(0.1, 0.9))
    with pytest.raises(ValueError, match="size 2"):
        db.nearest(vec(1, 2, 3))
    with pytest.raises(ValueError, match="alpha"):
        db.update("ann", vec(1, 0), 0.0)


def test_oracle_first_then_exit_zero_hit_updates_only_what_was_computed():
    ann = (vec(1, 0), vec(1, 0, 0))
    exits, oracle = Exits({1: ann}), Oracle({1: "ann"})
    labeller = FaceLabeller(exits, oracle, thresholds=[0.1, 0.1], alpha=ALPHA, dims=[2, 3])
    first = labeller.label(face(1))
    assert (first.label, first.exit, first.exits_computed) == ("ann", None, 2) and oracle.calls == [1]
    assert labeller.database.exits[0].labels == ["ann"] and labeller.database.exits[1].labels == ["ann"]
    exits.computed.clear()
    second = labeller.label(face(1))
    assert (second.label, second.exit, second.exits_computed) == ("ann", 0, 1)
    assert exits.computed == [(1, 0)]  # the second exit was never computed
    assert oracle.calls == [1]
    assert labeller.database.exits[0].count("ann") == 2 and labeller.database.exits[1].count("ann") == 1
    assert labeller.stats.to_dict() | {} == {
        "faces": 2, "hits_per_exit": [1, 0], "hit_rate_per_exit": [0.5, 0.0], "oracle_calls": 1,
        "oracle_rate": 0.5, "exits_computed": 3,
    }  # fmt: skip


def test_a_miss_at_exit_zero_can_match_at_exit_one_and_both_averages_move():
    ann_a, ann_b = (vec(1, 0), vec(1, 0, 0)), (vec(0, 1), vec(0.9, 0.1, 0))  # exit 0 sees them far apart
    labeller = FaceLabeller(
        Exits({1: ann_a, 2: ann_b}), Oracle({1: "ann", 2: "?"}), [0.5, 0.5], ALPHA, dims=[2, 3]
    )
    labeller.label(face(1))
    d = labeller.label(face(2))
    assert (d.label, d.exit, d.exits_computed) == ("ann", 1, 2)
    np.testing.assert_allclose(labeller.database.exits[0].vector("ann"), [0.75, 0.25])
    np.testing.assert_allclose(labeller.database.exits[1].vector("ann"), [0.975, 0.025, 0.0])


def test_a_new_person_goes_to_the_oracle_and_gets_own_rows():
    ann, bob = (vec(1, 0), vec(1, 0, 0)), (vec(-1, 0), vec(0, 0, 1))
    oracle = Oracle({1: "ann", 2: "bob"})
    labeller = FaceLabeller(Exits({1: ann, 2: bob}), oracle, [0.5, 0.5], ALPHA, dims=[2, 3])
    names = [d.label for d in labeller.label_all([face(1), face(2), face(1), face(2)])]
    assert names == ["ann", "bob", "ann", "bob"] and oracle.calls == [1, 2]
    assert labeller.database.labels == ["ann", "bob"]
    # thresholds of None: the exits never decide, the oracle names every face
    never = FaceLabeller(Exits({1: ann}), Oracle({1: "ann"}), [None, None], ALPHA, dims=[2, 3])
    assert [d.exit for d in never.label_all([face(1)] * 3)] == [None, None, None]
    assert never.stats.oracle_calls == 3


def test_a_reopened_database_continues():
    ann = (vec(1, 0), vec(1, 0, 0))
    first = FaceLabeller(Exits({1: ann}), Oracle({1: "ann"}), [0.1, 0.1], ALPHA, dims=[2, 3])
    first.label(face(1))
    saved = [db.to_arrays() for db in first.database.exits]
    reopened = FaceDatabase([ExitDatabase.from_arrays(*arrays) for arrays in saved])
    oracle = Oracle({})
    second = FaceLabeller(Exits({1: ann}), oracle, [0.1, 0.1], ALPHA, database=reopened)
    assert second.label(face(1)).exit == 0 and oracle.calls == []


def test_bad_parameters():
    exits, oracle = Exits({}), Oracle({})
    with pytest.raises(ValueError, match="alpha"):
        FaceLabeller(exits, oracle, [0.1], alpha=1.5, dims=[2])
    with pytest.raises(ValueError, match="2 thresholds for 1 exits"):
        FaceLabeller(exits, oracle, [0.1, 0.1], dims=[2])
    with pytest.raises(ValueError, match="distances"):
        FaceLabeller(exits, oracle, [-1.0], dims=[2])
    with pytest.raises(ValueError, match="dims"):
        FaceLabeller(exits, oracle, [0.1])
