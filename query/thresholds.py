"""When may an exit of the query MXN decide a candidate without the ground-truth CNN?

A label query asks one yes/no question of every candidate cluster: "is its
representative a <label>?". At exit ``i`` the query MXN gives ``p``, its
probability of the label, and

* ``p >= accept[i]`` accepts the cluster (a confident "yes"),
* ``p <= reject[i]`` rejects it (a confident "no"; allowed only where
  tuning showed that recall stays at target),
* anything else goes on to the next exit, and after the last one to the
  ground-truth CNN.

Thresholds may differ per label (``per_label``): ``mxn tune query`` fits each
label on its own candidates, so that a label the exits find hard keeps its
own recall instead of paying for the easy ones, and a query for a label with
no thresholds of its own uses the shared ones.

Before any exit runs, the index itself may reject (``index_reject``): a
candidate was indexed under the label because the ingest model put it
somewhere in its top-k, and the score it gave (``object_labels.score``)
sits in SQL. A score at or below ``index_reject`` rejects the candidate
with no crop read and no CNN run. The score means something only for the
ingest model and settings that wrote it, so the thresholds name that
scorer (``index_scorer``, see :func:`index_scorer_of`) and a candidate of
another index goes on to the exits.

``None`` means the exit never decides that way; so do an accept threshold of
1.0 and a reject threshold of 0.0 (a softmax that rounds to exactly 1 or 0
is no evidence), which is why thresholds at 1.0 reproduce Focus exactly.

A thresholds file is JSON written by ``mxn tune query``; without one, a
query uses the thresholds calibrated into the query model's card as accept
thresholds (top-1 at 99% precision; all above 0.5, so a confident top-1 for
the label is a confident "yes") and rejects nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mxn.jsonfile import read_format_json
from mxn.modelfile import MXNModel
from mxn.runner import DecisionRule
from mxn.storage.records import RunRecord

FORMAT = "mxn-query-thresholds"
FORMAT_VERSION = 1


class ThresholdsError(ValueError):
    """A thresholds file that is missing, corrupt, or made for another model."""


def index_scorer_of(run: RunRecord) -> str:
    """Who wrote a run's index scores: its mode, ingest model and the exits and top-k it aggregated."""
    exits = ",".join(str(e) for e in run.config.get("exits") or [])
    return f"{run.mode}:{run.model_sha[:16]}:exits={exits}:top{run.config.get('topk')}"


def _check(values: Sequence[float | None], name: str) -> tuple[float | None, ...]:
    out: list[float | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 0 <= v <= 1:
            raise ThresholdsError(f"{name}[{i}] must be a probability in [0, 1] or null, got {v!r}")
        out.append(float(v))
    return tuple(out)


def _reject_limit(r: float | None) -> float:
    """A reject threshold as a number: ``-inf`` for ``None`` or 0.0, which never reject."""
    return -np.inf if r is None or r <= 0.0 else r


@dataclass(frozen=True)
class QueryThresholds:
    """Per-exit accept and reject thresholds on the probability of the queried label.

    Args:
        accept: per exit, accept when ``p >= accept[i]`` (``None`` or 1.0: never).
        reject: per exit, reject when ``p <= reject[i]`` (``None`` or 0.0: never).
        model_sha: the query model they were tuned for (``None``: any).
        target_precision, target_recall: what tuning aimed for.
        evaluation: what tuning measured on held-out data.
        per_label: thresholds of their own for some labels (each without
            ``per_label`` itself); other labels use ``accept`` and ``reject``.
        index_reject: reject when the index's stored score is ``<=`` it,
            before any exit (``None`` or 0.0: never).
        index_scorer: the ingest scorer those scores must come from
            (:func:`index_scorer_of`; ``None``: any).
    """

    accept: tuple[float | None, ...]
    reject: tuple[float | None, ...]
    model_sha: str | None = None
    target_precision: float | None = None
    target_recall: float | None = None
    evaluation: dict[str, Any] = field(default_factory=dict, compare=False)
    per_label: dict[str, QueryThresholds] = field(default_factory=dict)
    index_reject: float | None = None
    index_scorer: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "accept", _check(self.accept, "accept"))
        object.__setattr__(self, "reject", _check(self.reject, "reject"))
        object.__setattr__(self, "index_reject", _check((self.index_reject,), "index_reject")[0])
        if self.index_scorer is not None and not isinstance(self.index_scorer, str):
            raise ThresholdsError(f"index_scorer must be a string or null, got {self.index_scorer!r}")
        if len(self.accept) != len(self.reject):
            raise ThresholdsError(
                f"{len(self.accept)} accept thresholds but {len(self.reject)} reject thresholds"
            )
        for i, (a, r) in enumerate(zip(self.accept_limits, self.reject_limits, strict=True)):
            if r >= a:
                raise ThresholdsError(f"exit {i}: reject threshold {r} must lie below accept threshold {a}")
        for label, own in self.per_label.items():
            if own.num_exits != self.num_exits or own.per_label:
                raise ThresholdsError(
                    f"label {label!r}: its thresholds must cover the same {self.num_exits} exits, flat"
                )

    def for_label(self, label: str) -> QueryThresholds:
        """The thresholds a query for ``label`` uses: its own, or the shared ones."""
        return self.per_label.get(label, self)

    @property
    def num_exits(self) -> int:
        return len(self.accept)

    @property
    def accept_limits(self) -> np.ndarray:
        """Accept thresholds as numbers, ``inf`` where an exit never accepts."""
        return np.array([np.inf if a is None or a >= 1.0 else a for a in self.accept], np.float64)

    @property
    def reject_limits(self) -> np.ndarray:
        """Reject thresholds as numbers, ``-inf`` where an exit never rejects."""
        return np.array([_reject_limit(r) for r in self.reject], np.float64)

    @property
    def index_reject_limit(self) -> float:
        """The index stage's reject threshold as a number, ``-inf`` where it never rejects."""
        return _reject_limit(self.index_reject)

    def index_rejects(self, scores: np.ndarray) -> np.ndarray:
        """Mask of index scores the index stage rejects (NaN, i.e. no score: never)."""
        return np.asarray(scores, np.float64) <= self.index_reject_limit

    @classmethod
    def never(cls, num_exits: int) -> QueryThresholds:
        """No exit decides anything: every candidate goes to the GT-CNN (Focus)."""
        return cls((None,) * num_exits, (None,) * num_exits)

    @classmethod
    def from_model(cls, model: MXNModel) -> QueryThresholds:
        """The model card's calibrated top-1 thresholds as accept thresholds; nothing rejected."""
        n = model.spec.num_exits
        accept = tuple(model.thresholds) if model.thresholds is not None else (None,) * n
        # a top-1 threshold below 0.5 does not mean "the label is likeliest"
        accept = tuple(a if a is None or a > 0.5 else None for a in accept)
        return cls(accept, (None,) * n, model_sha=None)

    @property
    def decides(self) -> bool:
        """Whether anything can decide a candidate without the GT-CNN: an exit, or the index stage."""
        return self.last_deciding_exit is not None or np.isfinite(self.index_reject_limit)

    def falling_back_to(self, other: QueryThresholds) -> QueryThresholds:
        """These thresholds, with ``other``'s for every label whose own never decide.

        One camera's calibration clip may hold too few of a label's positives
        to show the target for it (a quiet road's buses): its own thresholds
        for that label then send every candidate to the GT-CNN. ``other``,
        tuned on more cameras' candidates (:meth:`TuningSamples.concat`), has
        the evidence; labels that decide on their own keep their camera's
        thresholds. The borrowed index stage is kept only where both name
        the same index scorer, or these use none (its scores mean nothing to
        another index).
        """
        if other.num_exits != self.num_exits:
            raise ThresholdsError(
                f"{other.num_exits} exits to fall back to, but these thresholds cover {self.num_exits}"
            )
        if other.model_sha and self.model_sha and other.model_sha != self.model_sha:
            raise ThresholdsError("the thresholds to fall back to were tuned for another query model")
        scorer = self.index_scorer or other.index_scorer  # none of ours: nothing of ours uses the stage
        per_label = dict(self.per_label)
        for label, theirs in other.per_label.items():
            mine = per_label.get(label)
            if mine is None or not mine.decides:
                usable = other.index_scorer == scorer
                per_label[label] = theirs if usable else replace(theirs, index_reject=None)
        return replace(self, per_label=per_label, index_scorer=scorer)

    @property
    def last_deciding_exit(self) -> int | None:
        """The deepest exit that can accept or reject (``None``: no exit decides anything).

        The cascade stops there: deeper stages could not change a verdict.
        """
        can = np.flatnonzero(np.isfinite(self.accept_limits) | np.isfinite(self.reject_limits))
        return int(can[-1]) if can.size else None

    def outcomes(self, exit_index: int, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(accepted, rejected) masks of label probabilities ``p`` at one exit."""
        p = np.asarray(p, np.float64)
        return p >= self.accept_limits[exit_index], p <= self.reject_limits[exit_index]

    def rule(self, label_index: int) -> DecisionRule:
        """The exit runner's decision rule for a query of class ``label_index``: leave when decided."""

        def decide(exit_index: int, outputs: np.ndarray, features, items) -> np.ndarray:
            accepted, rejected = self.outcomes(exit_index, outputs[:, label_index])
            return accepted | rejected

        return decide

    def key(self) -> str:
        """A short identity of the decision-making part (names cached verdicts)."""
        decisions: dict[str, Any] = self.decisions()
        if self.per_label:  # thresholds without labels of their own keep the key they always had
            decisions["labels"] = {k: t.decisions() for k, t in self.per_label.items()}
        if self.index_scorer is not None:
            decisions["index_scorer"] = self.index_scorer
        text = json.dumps(decisions, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def decisions(self) -> dict[str, Any]:
        """The shared thresholds as JSON (``index_reject`` only where set: older keys stay)."""
        out: dict[str, Any] = {"accept": list(self.accept), "reject": list(self.reject)}
        if self.index_reject is not None:
            out["index_reject"] = self.index_reject
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **self.decisions(),
            "per_label": {k: t.decisions() for k, t in sorted(self.per_label.items())},
            "model_sha": self.model_sha,
            "index_scorer": self.index_scorer,
            "target_precision": self.target_precision,
            "target_recall": self.target_recall,
            "evaluation": self.evaluation,
        }

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def load_thresholds(path: str | os.PathLike) -> QueryThresholds:
    """Read a thresholds file; anything wrong with it is a :class:`ThresholdsError` naming the file."""
    path = Path(path)
    data = read_format_json(
        path, FORMAT, FORMAT_VERSION, ThresholdsError, "an mxn query thresholds file", "`mxn tune query`"
    )
    try:
        labels = data.get("per_label") or {}
        if not isinstance(labels, dict):
            raise ThresholdsError('"per_label" must map labels to {"accept": [...], "reject": [...]}')
        return QueryThresholds(
            *_pair(data),
            per_label={
                str(k): QueryThresholds(*_pair(v, f"per_label.{k}."), index_reject=v.get("index_reject"))
                for k, v in labels.items()
            },
            index_reject=data.get("index_reject"),
            index_scorer=data.get("index_scorer"),
            model_sha=data.get("model_sha"),
            target_precision=data.get("target_precision"),
            target_recall=data.get("target_recall"),
            evaluation=data.get("evaluation") or {},
        )
    except KeyError as err:
        raise ThresholdsError(f"{path}: the field {err} is missing") from None
    except ThresholdsError as err:
        raise ThresholdsError(f"{path}: {err}") from None


def _pair(data: Any, where: str = "") -> tuple[tuple, tuple]:
    """The ``accept`` and ``reject`` lists of a thresholds file (or of one of its labels)."""
    if not isinstance(data, dict):
        raise ThresholdsError(f'"{where.rstrip(".")}" must be {{"accept": [...], "reject": [...]}}')
    accept, reject = data["accept"], data["reject"]
    if not isinstance(accept, list) or not isinstance(reject, list):
        raise ThresholdsError(f'"{where}accept" and "{where}reject" must be lists')
    return tuple(accept), tuple(reject)


def check_for_model(thresholds: QueryThresholds, model: MXNModel, sha: str, source: str) -> None:
    """Refuse thresholds made for another query model (other exits or other weights)."""
    if thresholds.num_exits != model.spec.num_exits:
        raise ThresholdsError(
            f"{source}: thresholds for {thresholds.num_exits} exits, but the query model has "
            f"{model.spec.num_exits}"
        )
    if thresholds.model_sha is not None and thresholds.model_sha != sha:
        raise ThresholdsError(
            f"{source}: tuned for another query model (sha {thresholds.model_sha[:12]}, "
            f"this one is {sha[:12]}); tune again with `mxn tune query --qmodel ...`"
        )
