"""Per-exit distance thresholds for a target accuracy, and the hit rate / accuracy trade-off of alpha.

Algorithm 3's thresholds ``T_i`` decide how far a face's feature may lie
from a person's running average at exit ``i`` for that exit to name it. A
large ``T_i`` lets exit ``i`` decide often (cheap) and wrongly more often;
``None`` keeps the exit from deciding at all. Tuning replays the labeller on
calibration faces whose truth is known (:class:`FaceSample`: features of
every exit and the oracle's answer for every face, computed once) and keeps,
exit by exit, the largest threshold at which the whole labelling still
reaches the target accuracy (the paper tuned for a target accuracy the same
way). ``1/alpha`` is then swept with those thresholds (the dissertation's
Fig. 5.6): a longer memory matches more faces early but follows changes
more slowly.

A thresholds file is JSON written by ``mxn tune faces`` and read by
``mxn faces --thresholds``.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mxn.jsonfile import read_format_json
from mxn.targets import TARGET_ACCURACY

from .database import FaceDatabase
from .labeller import DEFAULT_ALPHA, FaceLabeller

FORMAT = "mxn-face-thresholds"
FORMAT_VERSION = 1
#: Candidate thresholds, finer where features of one face lie (distances of unit vectors are in [0, 2]).
DEFAULT_GRID = tuple(round(float(t), 4) for t in np.geomspace(0.01, 1.4, 40))
#: The 1/alpha values of the sweep (the paper's default is 15).
DEFAULT_INV_ALPHAS = (1, 2, 3, 5, 8, 10, 15, 20, 30, 50, 100)


class ThresholdsError(ValueError):
    """A face thresholds file that is missing, corrupt, or made for another model."""


@dataclass
class FaceSample:
    """Calibration faces in movie order, with everything the labeller could ask of them.

    Attributes:
        features: per exit, ``(N, D_i)`` features of every face.
        oracle_names: what the oracle says of each face (asked once per face, in order).
        truth: each face's true person (``None``: a detection that matches no drawn face).
        gallery: the people the oracle knows by name (others are strangers: ``unknown-N``).
    """

    features: list[np.ndarray]
    oracle_names: list[str]
    truth: list[str | None]
    gallery: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        n = len(self.oracle_names)
        if not self.features or any(len(f) != n for f in self.features) or len(self.truth) != n:
            raise ValueError(
                "every exit's features, the oracle's names and the truth must cover the same faces"
            )

    def __len__(self) -> int:
        return len(self.oracle_names)

    @property
    def num_exits(self) -> int:
        return len(self.features)


@dataclass(frozen=True)
class Replay:
    """One replay of Algorithm 3 over a :class:`FaceSample`."""

    labels: list[str]
    exits: list[int | None]  # who decided each face (None: the oracle)
    accuracy: float  # against the truth (see :func:`truth_accuracy`)
    oracle_agreement: float  # share of faces labelled as the oracle labels them
    hit_rate_per_exit: list[float]
    oracle_rate: float

    @property
    def hit_rate(self) -> float:
        """Share of faces some exit decided (no oracle call)."""
        return 1.0 - self.oracle_rate

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "oracle_agreement": self.oracle_agreement,
            "hit_rate": self.hit_rate,
            "hit_rate_per_exit": self.hit_rate_per_exit,
            "oracle_rate": self.oracle_rate,
        }


def truth_accuracy(labels: Sequence[str], truth: Sequence[str | None], gallery: set[str]) -> float:
    """Share of faces with a true person that got the right name.

    A gallery person's right name is their own. A stranger has no name to
    get right, only a stable one: the ``unknown-N`` they are most often
    called is theirs (each ``unknown-N`` belongs to one stranger at most), and
    any other name is wrong. Detections of no drawn face are not counted.
    """
    scored = [(lab, t) for lab, t in zip(labels, truth, strict=True) if t is not None]
    if not scored:
        return 0.0
    names: dict[str, str] = {}
    votes = Counter((t, lab) for lab, t in scored if t not in gallery and lab not in gallery)
    for (person, label), _ in votes.most_common():
        if person not in names and label not in names.values():
            names[person] = label
    right = sum(lab == (t if t in gallery else names.get(t)) for lab, t in scored)
    return right / len(scored)


def replay(sample: FaceSample, thresholds: Sequence[float | None], alpha: float = DEFAULT_ALPHA) -> Replay:
    """Algorithm 3 over the sample in order, with the oracle's stored answers (no model runs)."""
    labeller = FaceLabeller(
        exit_features=lambda k: (f[k] for f in sample.features),
        oracle=lambda k: sample.oracle_names[k],
        thresholds=list(thresholds),
        alpha=alpha,
        dims=[f.shape[1] for f in sample.features],
    )
    decisions = [labeller.label(k) for k in range(len(sample))]
    labels = [d.label for d in decisions]
    n = max(len(sample), 1)
    return Replay(
        labels=labels,
        exits=[d.exit for d in decisions],
        accuracy=truth_accuracy(labels, sample.truth, sample.gallery),
        oracle_agreement=sum(a == b for a, b in zip(labels, sample.oracle_names, strict=True)) / n,
        hit_rate_per_exit=[h / n for h in labeller.stats.hits_per_exit],
        oracle_rate=labeller.stats.oracle_calls / n,
    )


@dataclass(frozen=True)
class FaceThresholds:
    """Per-exit distance thresholds with what tuning aimed for and measured."""

    thresholds: tuple[float | None, ...]
    alpha: float = DEFAULT_ALPHA
    model_sha: str | None = None
    target_accuracy: float | None = None
    evaluation: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        values = []
        for i, t in enumerate(self.thresholds):
            if t is not None and (
                isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0
            ):
                raise ThresholdsError(f"thresholds[{i}] must be a distance >= 0 or null, got {t!r}")
            values.append(None if t is None else float(t))
        if not values:
            raise ThresholdsError("a thresholds file needs one threshold per exit")
        if not 0 < self.alpha <= 1:
            raise ThresholdsError(f"alpha must lie in (0, 1], got {self.alpha!r}")
        object.__setattr__(self, "thresholds", tuple(values))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "thresholds": list(self.thresholds),
            "alpha": self.alpha,
            "model_sha": self.model_sha,
            "target_accuracy": self.target_accuracy,
            "evaluation": self.evaluation,
        }

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, model_sha: str | None = None, num_exits: int | None = None):
        """Read a thresholds file; clear errors for a missing or corrupt one, or one for another model."""
        path = Path(path)
        data = read_format_json(
            path, FORMAT, FORMAT_VERSION, ThresholdsError, "a face thresholds file", "`mxn tune faces`"
        )
        thresholds = data.get("thresholds")
        if not isinstance(thresholds, list):
            raise ThresholdsError(f"{path}: 'thresholds' must be a list")
        result = cls(
            tuple(thresholds),
            alpha=float(data.get("alpha", DEFAULT_ALPHA)),
            model_sha=data.get("model_sha"),
            target_accuracy=data.get("target_accuracy"),
            evaluation=data.get("evaluation") or {},
        )
        if num_exits is not None and len(result.thresholds) != num_exits:
            raise ThresholdsError(
                f"{path}: {len(result.thresholds)} thresholds for a face model with {num_exits} exits"
            )
        if model_sha and result.model_sha and result.model_sha != model_sha:
            raise ThresholdsError(
                f"{path}: tuned for face model {result.model_sha[:12]}, not {model_sha[:12]}; "
                "run `mxn tune faces` again"
            )
        return result


def closest_wrong_approach(sample: FaceSample, alpha: float = DEFAULT_ALPHA) -> list[float]:
    """Per exit, the smallest distance between a face and *another* person's running average.

    Algorithm 3 names a face wrongly exactly when, at some exit, another
    person's average lies within that exit's threshold (most dangerously
    when the face's own person is not in the databases yet: a first
    appearance). Replayed with the oracle naming every face, so the averages
    are the cleanest they can be, this is how close such a mistake ever
    came on the calibration faces.
    """
    databases = FaceDatabase.empty([f.shape[1] for f in sample.features])
    closest = [float("inf")] * sample.num_exits
    for k, name in enumerate(sample.oracle_names):
        for i, (features, db) in enumerate(zip(sample.features, databases.exits, strict=True)):
            labels, vectors, _ = db.to_arrays()
            others = [j for j, label in enumerate(labels) if label != name]
            if others:
                nearest = float(np.linalg.norm(vectors[others] - features[k], axis=1).min())
                closest[i] = min(closest[i], nearest)
            db.update(name, features[k], alpha)
    return closest


def tune_thresholds(
    sample: FaceSample,
    target_accuracy: float = TARGET_ACCURACY,
    alpha: float = DEFAULT_ALPHA,
    grid: Sequence[float] = DEFAULT_GRID,
    margin_steps: int = 2,
) -> tuple[list[float | None], Replay]:
    """Exit by exit, the largest threshold on ``grid`` at which the replay stays at ``target_accuracy``.

    Earlier exits are fixed first (they are the cheapest, so they get the
    most faces they can take); a later exit's threshold is searched with
    them in place. Each search walks the grid upwards and stops at the first
    threshold that breaks the target, or that reaches the exit's
    :func:`closest_wrong_approach` (a threshold there would have named some
    calibration face after someone else, had the databases been slightly
    different: accuracy alone weighs such near misses, first appearances
    above all, far too little), keeping the one before. Accuracy is not
    monotone in a threshold (a wrong early match teaches the databases a
    wrong average), and a threshold whose smaller neighbours all pass is
    the safe choice. It then steps back ``margin_steps`` grid points (about
    12% each on the default grid), because the largest threshold that passes
    on a few hundred calibration faces is the one most likely to fail on the
    next movie. An exit that cannot decide without breaking the target gets
    ``None``. If the oracle alone misses the target, no exit decides.
    """
    if not 0 < target_accuracy <= 1:
        raise ValueError(f"target_accuracy must lie in (0, 1], got {target_accuracy}")
    if margin_steps < 0:
        raise ValueError(f"margin_steps must be >= 0, got {margin_steps}")
    grid = sorted({float(g) for g in grid})
    thresholds: list[float | None] = [None] * sample.num_exits
    if replay(sample, thresholds, alpha).accuracy < target_accuracy:
        return thresholds, replay(sample, thresholds, alpha)
    closest = closest_wrong_approach(sample, alpha)
    for i in range(sample.num_exits):
        passed = -1
        for k, value in enumerate(grid):
            if value >= closest[i]:
                break
            trial = replay(sample, [*thresholds[:i], value, *thresholds[i + 1 :]], alpha)
            if trial.accuracy < target_accuracy:
                break
            passed = k
        chosen = passed - margin_steps
        thresholds[i] = grid[chosen] if chosen >= 0 else None
    return thresholds, replay(sample, thresholds, alpha)


def sweep_alpha(
    sample: FaceSample, thresholds: Sequence[float | None], inv_alphas: Sequence[float] = DEFAULT_INV_ALPHAS
) -> list[dict[str, float]]:
    """Hit rate and accuracy against ``1/alpha`` with fixed thresholds (Fig. 5.6)."""
    rows = []
    for inv in inv_alphas:
        if inv < 1:
            raise ValueError(f"1/alpha must be >= 1, got {inv}")
        result = replay(sample, thresholds, 1.0 / inv)
        rows.append({"inv_alpha": float(inv), **result.to_dict()})
    return rows


def plot_alpha_sweep(rows: Sequence[dict[str, float]], path: str | os.PathLike, title: str = "") -> Path:
    """Fig. 5.6 as a PNG: hit rate and accuracy against 1/alpha."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inv = [r["inv_alpha"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot(inv, [100 * r["hit_rate"] for r in rows], "o-", label="hit rate (no oracle call)")
    ax.plot(inv, [100 * r["accuracy"] for r in rows], "s-", label="accuracy")
    ax.set_xscale("log")
    ax.set_xlabel("1 / alpha")
    ax.set_ylabel("%")
    ax.set_ylim(0, 101)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or "Face labelling: hit rate and accuracy against 1/alpha")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
