"""Algorithm 3 (dissertation section 5.3.2): label a face with the cheapest exit that is sure.

For each face, the exits of the face MXN compute features one after another.
After exit ``i``, the nearest person in that exit's database ``D[M_i]`` is
taken if their running average lies within ``thresholds[i]``; otherwise the
next exit runs. Only when no exit is sure does the oracle (slow, accurate)
name the face. Either way, every feature computed for the face is folded
into its person's average at that exit, so the databases learn the cast as
the movie goes on and later faces stop earlier::

    F = []
    for each exit M_i, in order:
        f = M_i(I); F.append(f)
        if the nearest label l in D[M_i] has distance(f, D[M_i][l]) <= T_i:
            goto update
    l = O(I)
    update: for each computed f_i in F:
        D[M_i][l] = (1 - alpha) * D[M_i][l] + alpha * f_i   (new label: = f_i)
    return l

The exits are any callable that yields a face's features exit by exit,
lazily (:meth:`mxn.runner.ExitRunner.iter_exits` for a face MXN); the
oracle is any callable from face image to name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .database import FaceDatabase
from .settings import DEFAULT_ALPHA  # the rate the jobs share, read here by callers too

#: A face image in, its features out, one exit at a time.
ExitFeatures = Callable[[np.ndarray], Iterator[np.ndarray]]
#: A face image in, a name out: the expensive, trusted labeller.
Oracle = Callable[[np.ndarray], str]


@dataclass(frozen=True)
class FaceDecision:
    """Who a face is and who said so."""

    label: str
    exit: int | None  # the exit whose database matched; None: the oracle named it
    distance: float | None  # the matching distance (None for the oracle)
    exits_computed: int  # features computed for this face (the cost)


@dataclass
class LabellerStats:
    faces: int = 0
    hits_per_exit: list[int] = field(default_factory=list)
    oracle_calls: int = 0
    exits_computed: int = 0

    @property
    def hit_rate_per_exit(self) -> list[float]:
        return [h / self.faces if self.faces else 0.0 for h in self.hits_per_exit]

    def to_dict(self) -> dict:
        return {
            "faces": self.faces,
            "hits_per_exit": list(self.hits_per_exit),
            "hit_rate_per_exit": self.hit_rate_per_exit,
            "oracle_calls": self.oracle_calls,
            "oracle_rate": self.oracle_calls / self.faces if self.faces else 0.0,
            "exits_computed": self.exits_computed,
        }


class FaceLabeller:
    """Algorithm 3 over a stream of faces (see the module docstring).

    Args:
        exit_features: yields a face's features exit by exit.
        oracle: names a face when no exit is sure.
        thresholds: per exit, the largest distance at which its nearest
            person is taken (``None``: that exit never decides).
        alpha: the running averages' rate, in (0, 1].
        database: the per-exit databases to start from (a movie reopened
            and extended); ``dims`` makes empty ones instead.
        dims: feature size per exit, for empty databases.
    """

    def __init__(
        self,
        exit_features: ExitFeatures,
        oracle: Oracle,
        thresholds: Sequence[float | None],
        alpha: float = DEFAULT_ALPHA,
        database: FaceDatabase | None = None,
        dims: Sequence[int] | None = None,
    ) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must lie in (0, 1], got {alpha}")
        if any(t is not None and not t >= 0 for t in thresholds):
            raise ValueError(f"thresholds are distances (>= 0 or None), got {list(thresholds)}")
        if database is None:
            if dims is None:
                raise ValueError("give either a database or the feature size of every exit (dims)")
            database = FaceDatabase.empty(dims)
        if len(thresholds) != database.num_exits:
            raise ValueError(f"{len(thresholds)} thresholds for {database.num_exits} exits")
        self.exit_features, self.oracle = exit_features, oracle
        self.thresholds, self.alpha, self.database = list(thresholds), alpha, database
        self.stats = LabellerStats(hits_per_exit=[0] * database.num_exits)

    def label(self, face: np.ndarray) -> FaceDecision:
        """Name one face and update the databases (Algorithm 3)."""
        computed: list[np.ndarray] = []
        decision: FaceDecision | None = None
        exits = self.exit_features(face)
        try:
            for i, (feature, db, threshold) in enumerate(
                zip(exits, self.database.exits, self.thresholds, strict=False)
            ):
                computed.append(feature)
                name, distance = db.nearest(feature)
                if name is not None and threshold is not None and distance <= threshold:
                    decision = FaceDecision(name, i, distance, len(computed))
                    break
        finally:
            close = getattr(exits, "close", None)
            if close is not None:
                close()  # a generator stopped early runs no further stage
        if decision is None:
            if len(computed) != self.database.num_exits:
                raise ValueError(
                    f"the exits gave {len(computed)} features for {self.database.num_exits} databases"
                )
            decision = FaceDecision(str(self.oracle(face)), None, None, len(computed))
            self.stats.oracle_calls += 1
        else:
            self.stats.hits_per_exit[decision.exit] += 1
        for feature, db in zip(computed, self.database.exits, strict=False):
            db.update(decision.label, feature, self.alpha)
        self.stats.faces += 1
        self.stats.exits_computed += len(computed)
        return decision

    def label_all(self, faces: Sequence[np.ndarray]) -> list[FaceDecision]:
        """Name faces in order (order matters: each one teaches the databases)."""
        return [self.label(face) for face in faces]
