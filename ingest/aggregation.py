"""Top-K label aggregation over several exits (dissertation section 5.3.1.1).

Focus indexes each object under the top-K labels of one cheap CNN; to reach
99% recall with a cheap model, K must be large, and every extra label is an
extra index entry and cluster. An MXN gives several cheap opinions at once:
each chosen exit j contributes its top-k' labels and the object is indexed
under their union R. Where the exits agree R stays small; where they
disagree R widens exactly for the hard objects. ``#indexing`` is the sum of
|R| over objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def topk_mask(probs: np.ndarray, k: int) -> np.ndarray:
    """Boolean (N, C) mask of each row's ``k`` highest probabilities (ties broken by class index)."""
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise ValueError(f"expected (objects, classes) probabilities, got shape {probs.shape}")
    n, c = probs.shape
    if not 1 <= k <= c:
        raise ValueError(f"top-k needs 1 <= k <= {c} classes, got k={k}")
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    mask = np.zeros((n, c), bool)
    np.put_along_axis(mask, order, True, axis=1)
    return mask


def aggregate_topk(outputs: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The union of every exit's top-``k`` labels, per object.

    Args:
        outputs: one (N, C) probability array per chosen exit.
        k: labels each exit contributes (k' in the dissertation; Focus's K
            when there is one exit).

    Returns:
        ``(mask, scores)``: ``mask[i, c]`` says object i is indexed under
        class c; ``scores[i, c]`` is the highest probability any exit that
        put c in its top-k gave it (0 where not indexed).
    """
    if not outputs:
        raise ValueError("at least one exit's outputs are needed")
    mask = np.zeros(np.shape(outputs[0]), bool)
    scores = np.zeros(np.shape(outputs[0]), np.float32)
    for probs in outputs:
        if np.shape(probs) != mask.shape:
            raise ValueError("every exit must give the same (objects, classes) shape")
        chosen = topk_mask(probs, k)
        mask |= chosen
        scores = np.maximum(scores, np.where(chosen, probs, 0.0).astype(np.float32))
    return mask, scores


def indexing_count(mask: np.ndarray) -> int:
    """``#indexing``: (object, label) insertions the mask asks for."""
    return int(np.count_nonzero(mask))


def label_sets(mask: np.ndarray, scores: np.ndarray, classes: Sequence[str]) -> list[dict[str, float]]:
    """Per object, ``{label: score}`` for the labels it is indexed under, best first."""
    out = []
    for row, score in zip(mask, scores, strict=True):
        idx = np.flatnonzero(row)
        idx = idx[np.argsort(-score[idx], kind="stable")]
        out.append({classes[i]: float(score[i]) for i in idx})
    return out
