"""Per-exit losses and their weighted sum (section 5.2).

The network's loss is ``L = sum_i w_i L_i`` over its exits, BranchyNet-style,
with ``w_i`` chosen by the user. Each ``L_i`` is cross-entropy or focal loss
``FL(p_t) = -(1 - p_t)^gamma log(p_t)``: the modulating factor shrinks the
loss of inputs the exit already gets right, so an exit trained with it is
confident only on easy inputs, and a confidence threshold then makes better
exit decisions (Table 5.8). Embedding exits learn by distillation: cosine
distance to a teacher's embedding of the same input.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from .train_config import LOSSES

_EPS = 1e-7


@keras.saving.register_keras_serializable(package="mxn")
class SparseFocalLoss(keras.losses.Loss):
    """Focal loss for softmax probabilities, against integer labels or target distributions.

    Integer labels (shape ``(N,)``) give ``-(1 - p_t)^gamma log(p_t)``. Target
    probability vectors (shape ``(N, classes)``: a teacher's softmax, for
    distillation) give its expectation over the targets,
    ``-sum_c q_c (1 - p_c)^gamma log(p_c)``, which is the same number for a
    one-hot ``q``. ``gamma = 0`` is plain cross-entropy.
    """

    def __init__(self, gamma: float = 2.0, name: str = "focal_loss", **kwargs) -> None:
        if gamma < 0:
            raise ValueError(f"focal loss gamma must be >= 0, got {gamma}")
        super().__init__(name=name, **kwargs)
        self.gamma = float(gamma)

    def call(self, y_true, y_pred):
        probs = ops.clip(y_pred, _EPS, 1.0 - _EPS)
        if len(y_true.shape) == 2 and y_true.shape[-1] == probs.shape[-1] and probs.shape[-1] > 1:
            targets = ops.cast(y_true, probs.dtype)
            return -ops.sum(targets * ops.power(1.0 - probs, self.gamma) * ops.log(probs), axis=-1)
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        p_t = ops.sum(probs * ops.one_hot(labels, ops.shape(probs)[-1]), axis=-1)
        return -ops.power(1.0 - p_t, self.gamma) * ops.log(p_t)

    def get_config(self) -> dict:
        return {**super().get_config(), "gamma": self.gamma}


def exit_loss(kind: str, gamma: float = 2.0, soft: bool = False) -> keras.losses.Loss:
    """One exit's loss: ``"ce"``, ``"focal"`` (classification) or ``"cosine"`` (embedding).

    ``soft``: the targets are probability vectors (a teacher's), not integer labels.
    """
    if kind == "ce":
        return SparseFocalLoss(gamma=0.0, name="ce") if soft else keras.losses.SparseCategoricalCrossentropy()
    if kind == "focal":
        return SparseFocalLoss(gamma=gamma)
    if kind == "cosine":
        return keras.losses.CosineSimilarity(axis=-1)
    raise ValueError(f"unknown loss {kind!r}; choose one of {LOSSES}")


def exit_weights(weights: Sequence[float] | None, num_exits: int) -> list[float]:
    """Validate per-exit loss weights (default: 1 for every exit)."""
    if weights is None:
        return [1.0] * num_exits
    weights = [float(w) for w in weights]
    if len(weights) != num_exits:
        raise ValueError(f"got {len(weights)} exit weights for {num_exits} exits")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"exit weights must be >= 0 and not all zero, got {weights}")
    return weights
