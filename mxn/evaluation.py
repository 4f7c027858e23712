"""How a trained model does on labelled images: each exit's accuracy and the early-exit cascade's.

What ``mxn evaluate`` prints and what :func:`mxn.training.fit_model` reports on the test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .images import ImageSet
from .modelfile import MXNModel
from .runner import ExitRunner


@dataclass
class Evaluation:
    """How a model does on one labelled split."""

    exit_accuracy: list[float]
    early_exit_accuracy: float | None
    early_exit_share: list[float] | None
    undecided_share: float | None
    items: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def exit_accuracy(runner: ExitRunner, images: np.ndarray, labels: np.ndarray) -> list[float]:
    """Top-1 accuracy of every exit (all exits computed with one shared prefix)."""
    result = runner.all_exits(images)
    return [float(np.mean(out.argmax(axis=1) == labels)) for out in result.outputs]


def evaluate(model: MXNModel, data: ImageSet, batch_size: int = 64) -> Evaluation:
    """Per-exit accuracy, and the cascade's accuracy and exit shares under the model's thresholds."""
    runner = model.runner(batch_size)
    accuracy = exit_accuracy(runner, data.images, data.labels)
    if not model.thresholds:
        return Evaluation(accuracy, None, None, None, len(data))
    cascade = runner.early_exit(data.images, model.thresholds)
    counts = cascade.exit_counts(runner.num_exits)
    n = max(1, len(data))
    return Evaluation(
        exit_accuracy=accuracy,
        early_exit_accuracy=float(np.mean(cascade.predictions == data.labels)),
        early_exit_share=[counts[i] / n for i in range(runner.num_exits)],
        undecided_share=counts[-1] / n,
        items=len(data),
    )


def agreement(before: ImageSet, after: ImageSet) -> float:
    """The share of images that keep their class name from ``before`` to ``after``."""
    same = [before.classes[x] == after.classes[y] for x, y in zip(before.labels, after.labels, strict=True)]
    return float(np.mean(same)) if same else 1.0
