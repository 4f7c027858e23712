"""Per-exit confidence thresholds that reach a target precision.

In the dissertation's words (section 5.2.3), an exit's *precision* is the
share of the items leaving at it that it labels correctly, and its *recall*
(here: *coverage*) the share of items that leave at it. A threshold is useful
only if the precision it promises holds on data it has not seen, so the
threshold is the lowest one whose precision on held-out calibration data is
at least the target **with a margin**: the one-sided Wilson lower bound of the
precision (at ``confidence``, default 95%) must reach the target. A target no
threshold can reach gives ``None``: that exit never decides.

Thresholds are fitted as a cascade by default: exit ``i`` is calibrated on the
items that exits ``0..i-1`` did not take, which is exactly the population it
sees in the exit runner's early-exit mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from .targets import CONFIDENCE, TARGET_PRECISION


@dataclass(frozen=True)
class ExitCalibration:
    """One exit's threshold and what it reached on the calibration data."""

    threshold: float | None
    precision: float | None
    coverage: float
    reached: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Calibration:
    """Thresholds for every exit, and the cascade's overall result."""

    target_precision: float
    confidence: float
    exits: tuple[ExitCalibration, ...]
    precision: float | None
    coverage: float | None

    @property
    def thresholds(self) -> list[float | None]:
        return [e.threshold for e in self.exits]

    def to_dict(self) -> dict:
        return {
            "target_precision": self.target_precision,
            "confidence": self.confidence,
            "thresholds": self.thresholds,
            "exits": [e.to_dict() for e in self.exits],
            "precision": self.precision,
            "coverage": self.coverage,
        }


def wilson_lower_bound(correct: np.ndarray, total: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided Wilson score lower bound of a proportion (vectorised)."""
    total = np.asarray(total, dtype=np.float64)
    phat = np.asarray(correct, dtype=np.float64) / np.maximum(total, 1)
    z = NormalDist().inv_cdf(confidence) if confidence > 0.5 else 0.0
    z2 = z * z
    centre = phat + z2 / (2 * total)
    spread = z * np.sqrt(phat * (1 - phat) / total + z2 / (4 * total * total))
    return (centre - spread) / (1 + z2 / total)


def fit_threshold(
    confidence_scores: np.ndarray,
    correct: np.ndarray,
    target_precision: float,
    confidence: float = CONFIDENCE,
    *,
    already_right: int = 0,
    already_accepted: int = 0,
) -> float | None:
    """The lowest threshold whose accepted items reach ``target_precision``.

    Items with ``score >= threshold`` are accepted. Returns ``None`` when no
    threshold reaches the target (or there are no items).

    ``already_accepted`` items (``already_right`` of them correct) were
    accepted before, by earlier exits of a cascade: the precision (and its
    margin) is then that of everything accepted so far, not of this exit's
    items alone. A later exit sees few items, and on its own could rarely
    show 99% with a margin; pooled, the answer as a whole keeps the target.
    """
    scores = np.asarray(confidence_scores, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if scores.size == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    scores, ok = scores[order], ok[order]
    accepted = already_accepted + np.arange(1, scores.size + 1)
    right = already_right + np.cumsum(ok)
    # A threshold at scores[k-1] accepts every item scoring at least that, so
    # only the last item of a run of equal scores is a valid cut.
    valid = np.append(scores[:-1] > scores[1:], True)
    bound = wilson_lower_bound(right, accepted, confidence)
    passing = np.flatnonzero(valid & (bound >= target_precision))
    if passing.size == 0:
        return None
    return float(scores[passing[-1]])


def calibrate_thresholds(
    exit_outputs: Sequence[np.ndarray],
    labels: np.ndarray,
    target_precision: float = TARGET_PRECISION,
    confidence: float = CONFIDENCE,
    cascade: bool = True,
) -> Calibration:
    """Fit a confidence threshold per exit on held-out data.

    Args:
        exit_outputs: per exit, the ``(N, C)`` probabilities on the same items.
        labels: the items' true classes, ``(N,)``.
        target_precision: what each exit's accepted items must reach.
        confidence: how sure the margin makes us that the target holds on new
            data (0.5 means no margin: the plain empirical precision).
        cascade: calibrate exit ``i`` only on the items earlier exits left.
    """
    if not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target_precision must be in (0, 1], got {target_precision}")
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
    labels = np.asarray(labels)
    n = len(labels)
    if not exit_outputs or any(len(o) != n for o in exit_outputs):
        raise ValueError("every exit needs one row of outputs per label")
    remaining = np.ones(n, dtype=bool)
    taken_right = taken = 0
    exits = []
    for outputs in exit_outputs:
        outputs = np.asarray(outputs)
        scores = outputs.max(axis=1)
        correct = outputs.argmax(axis=1) == labels
        pool = remaining if cascade else np.ones(n, dtype=bool)
        threshold = fit_threshold(scores[pool], correct[pool], target_precision, confidence)
        leave = pool & (scores >= threshold) if threshold is not None else np.zeros(n, bool)
        precision = float(correct[leave].mean()) if leave.any() else None
        exits.append(
            ExitCalibration(
                threshold=threshold,
                precision=precision,
                coverage=float(leave.mean()) if n else 0.0,
                reached=int(pool.sum()),
            )
        )
        if cascade:
            taken += int(leave.sum())
            taken_right += int((leave & correct).sum())
            remaining &= ~leave
    # The cascade's overall figures only mean something when exits are chained.
    return Calibration(
        target_precision=float(target_precision),
        confidence=float(confidence),
        exits=tuple(exits),
        precision=taken_right / taken if cascade and taken else None,
        coverage=taken / n if cascade and n else None,
    )


def exit_precision_recall(outputs: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """Table 5.8's measures at one threshold: precision of the items that
    exit, and recall = the share of items that exit."""
    outputs = np.asarray(outputs)
    leave = outputs.max(axis=1) >= threshold
    recall = float(leave.mean()) if len(leave) else 0.0
    if not leave.any():
        return float("nan"), recall
    precision = float((outputs.argmax(axis=1)[leave] == np.asarray(labels)[leave]).mean())
    return precision, recall
