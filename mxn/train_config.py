"""How to train a multi-exit network, in one module that imports nothing heavy.

:func:`mxn.training.train_network` and :func:`mxn.training.fit_model` take a
:class:`TrainConfig`; they load TensorFlow, this module does not, so the
Python API and the command line read its defaults when they start.
``mxn.training`` and ``mxn`` re-export it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: The optimizers :func:`mxn.training.train_network` knows.
OPTIMIZERS = ("sgd", "adam")
#: The losses of a classification head (``mxn train --loss``); embedding heads learn with ``"cosine"``.
CLASSIFICATION_LOSSES = ("ce", "focal")
#: Every loss :func:`mxn.losses.exit_loss` builds.
LOSSES = (*CLASSIFICATION_LOSSES, "cosine")


@dataclass
class TrainConfig:
    """How to train. Validated on construction.

    Args:
        loss: ``"ce"`` or ``"focal"`` for classification heads, ``"cosine"``
            (distillation to target vectors) for embedding heads.
        gamma: focal loss gamma.
        exit_weights: the ``w_i`` of each exit (default: all 1).
        epochs: the most epochs to run; early stopping may end sooner.
        batch_size: images per step.
        optimizer: ``"sgd"`` (momentum 0.9, as the dissertation) or ``"adam"``.
        learning_rate: initial learning rate.
        plateau_patience: epochs without improvement before the rate is cut by ``plateau_factor``.
        early_stopping_patience: epochs without improvement before training stops.
        augment: random shifts, brightness and contrast on training images.
        flip: also random horizontal flips (right for traffic, wrong for digits).
        seed: seeds weights, shuffling and augmentation.
        progress: show a progress bar.
    """

    loss: str = "ce"
    gamma: float = 2.0
    exit_weights: list[float] | None = None
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "sgd"
    learning_rate: float = 0.05
    momentum: float = 0.9
    plateau_patience: int = 3
    plateau_factor: float = 0.1
    early_stopping_patience: int = 6
    augment: bool = True
    flip: bool = True
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if self.loss == "focal" and self.gamma < 0:
            raise ValueError(f"focal loss gamma must be >= 0, got {self.gamma}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"plateau_factor must be in (0, 1), got {self.plateau_factor}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
