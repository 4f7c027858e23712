"""From data to a usable model file: train, calibrate, evaluate.

This is the recipe behind ``mxn train`` and the default models: train every
exit together, fit per-exit thresholds on held-out calibration data, then
measure each exit and the early-exit cascade on test data the model has never
seen. Splits that the data set does not provide are carved out of the
training split, class by class, with the seed.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mxn.calibration import Calibration, calibrate_thresholds
from mxn.engine import StagedEngine
from mxn.images import ImageSet, stratified_split
from mxn.modelfile import MXNModel
from mxn.network import MultiExitNetwork, build_network
from mxn.spec import NetworkSpec
from mxn.training import TrainConfig, TrainResult, train_network


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


@dataclass
class FitReport:
    """Everything :func:`fit_model` learnt about the model it made."""

    train: TrainResult
    calibration: Calibration
    evaluation: Evaluation
    split_sizes: dict[str, int]


def exit_accuracy(engine: StagedEngine, images: np.ndarray, labels: np.ndarray) -> list[float]:
    """Top-1 accuracy of every exit (all exits computed with one shared prefix)."""
    result = engine.all_exits(images)
    return [float(np.mean(out.argmax(axis=1) == labels)) for out in result.outputs]


def evaluate(model: MXNModel, data: ImageSet, batch_size: int = 64) -> Evaluation:
    """Per-exit accuracy, and the cascade's accuracy and exit shares under the model's thresholds."""
    engine = model.engine(batch_size)
    accuracy = exit_accuracy(engine, data.images, data.labels)
    if not model.thresholds:
        return Evaluation(accuracy, None, None, None, len(data))
    cascade = engine.early_exit(data.images, model.thresholds)
    counts = cascade.exit_counts(engine.num_exits)
    n = max(1, len(data))
    return Evaluation(
        exit_accuracy=accuracy,
        early_exit_accuracy=float(np.mean(cascade.predictions == data.labels)),
        early_exit_share=[counts[i] / n for i in range(engine.num_exits)],
        undecided_share=counts[-1] / n,
        items=len(data),
    )


def fit_model(
    spec: NetworkSpec,
    splits: dict[str, ImageSet],
    config: TrainConfig | None = None,
    target_precision: float = 0.99,
    source: str = "",
    init: MXNModel | None = None,
) -> tuple[MXNModel, FitReport]:
    """Train, calibrate and evaluate a model on ``splits``.

    ``splits`` needs ``"train"`` (or ``"all"``); ``"val"``, ``"calibration"``
    and ``"test"`` are used when present and carved from the training data
    otherwise (15% each). ``spec.num_classes`` is set from the data.
    ``init`` starts training from that model's weights (:func:`start_from`).
    """
    config = config or TrainConfig()
    splits = _complete_splits(splits, config.seed)
    train, val, calib, test = (splits[k] for k in ("train", "val", "calibration", "test"))
    spec = spec.replace(num_classes=len(train.classes))
    network = build_network(spec, seed=config.seed)
    if init is not None:
        start_from(network, init, train.classes)
    result = train_network(
        network, train.images, train.training_targets, val.images, val.training_targets, config
    )

    engine = StagedEngine(network, batch_size=config.batch_size)
    calib_outputs = engine.all_exits(calib.images).outputs
    calibration = calibrate_thresholds(calib_outputs, calib.labels, target_precision)
    model = MXNModel(
        network=network,
        classes=list(train.classes),
        thresholds=calibration.thresholds,
        calibration=calibration.to_dict(),
        training=training_provenance(
            source, config, result.to_dict(), split_sizes={k: len(v) for k, v in splits.items()}
        ),
    )
    evaluation = evaluate(model, test, config.batch_size)
    model.training["test"] = evaluation.to_dict()
    report = FitReport(result, calibration, evaluation, {k: len(v) for k, v in splits.items()})
    return model, report


def start_from(network: MultiExitNetwork, init: MXNModel, classes: list[str]) -> None:
    """Copy ``init``'s weights into ``network``: fine-tuning instead of training from scratch.

    Convolutions and the heads after global pooling do not depend on the
    input's side, so a model trained at 64 px can start a 128 px one: the
    ground-truth CNN is made that way (``mxn train --init``). Everything
    else must match: backbone, width, exits, aggregation, stem and classes.
    """
    want, have = network.spec, init.spec
    keys = ("backbone", "width", "exits", "aggregation", "stem", "head", "embedding_dim")
    differ = [k for k in keys if getattr(want, k) != getattr(have, k)]
    if differ:
        pairs = ", ".join(f"{k} {getattr(have, k)!r} vs {getattr(want, k)!r}" for k in differ)
        raise ValueError(f"cannot start from a model of another architecture: {pairs}")
    if list(init.classes) != list(classes):
        raise ValueError(
            f"cannot start from a model with other classes: it has {', '.join(init.classes)}; "
            f"the data has {', '.join(classes)}"
        )
    network.model.set_weights(init.network.model.get_weights())


def teacher_labels(
    splits: dict[str, ImageSet], teacher: MXNModel, batch_size: int = 64, soft: bool = False
) -> dict[str, ImageSet]:
    """Every split labelled with ``teacher``'s top-1 answer instead of its folder's name.

    ``soft`` also keeps the teacher's probabilities as each image's training
    targets (distillation): where the teacher itself is unsure, the student
    learns to be unsure too instead of learning a coin toss as a certainty,
    so its confidence thresholds separate the easy candidates from the
    ambiguous ones.

    Focus trains its cheap CNN on the ground-truth CNN's labels of the very
    objects ingest finds; a student trained this way learns to agree with the
    teacher, which is what queries judged against ``gt-all`` reward (on
    background-subtraction blobs, whose folder label is only the truth object
    they overlap most, models trained on folder labels disagreed on half of
    them). The images must be at the teacher's input size.
    """
    engine = teacher.engine(batch_size)
    last = teacher.spec.num_exits - 1
    out = {}
    for name, split in splits.items():
        if split.images.shape[1:3] != (teacher.spec.input_size,) * 2:
            raise ValueError(
                f"the teacher takes {teacher.spec.input_size} px images; the {name!r} split has "
                f"{split.images.shape[1]} px"
            )
        probabilities = engine.all_exits(split.images, exits=[last]).output(last)
        top = probabilities.argmax(axis=1).astype(split.labels.dtype)
        out[name] = ImageSet(split.images, top, list(teacher.classes), probabilities if soft else None)
    return out


def agreement(before: ImageSet, after: ImageSet) -> float:
    """The share of images that keep their class name from ``before`` to ``after``."""
    same = [before.classes[x] == after.classes[y] for x, y in zip(before.labels, after.labels, strict=True)]
    return float(np.mean(same)) if same else 1.0


def training_provenance(
    source: str, config: TrainConfig, result: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """What a model card records of how a model was trained: data, settings, outcome, when, with what."""
    return {
        "source": source,
        "config": config.to_dict(),
        "result": result,
        **extra,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }


def _complete_splits(splits: dict[str, ImageSet], seed: int) -> dict[str, ImageSet]:
    """Fill in missing val / calibration / test splits from the training data."""
    train = splits.get("train", splits.get("all"))
    if train is None:
        raise ValueError("the data needs a 'train' split (or a single class-per-folder directory)")
    missing = [k for k in ("val", "calibration", "test") if k not in splits]
    out = {k: v for k, v in splits.items() if k != "all"}
    if missing:
        fractions = (1.0 - 0.15 * len(missing), *([0.15] * len(missing)))
        parts = stratified_split(train.labels, fractions, seed)
        out["train"] = train.subset(parts[0])
        for name, idx in zip(missing, parts[1:], strict=True):
            out[name] = train.subset(idx)
    for name, split in out.items():
        if len(split) == 0:
            raise ValueError(f"the {name!r} split is empty; add more images per class")
    return out
