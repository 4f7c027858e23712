"""Training a multi-exit network on arrays (section 5.2.1's recipe).

SGD with momentum 0.9, the learning rate cut by 10 when the validation loss
plateaus, and early stopping instead of a fixed number of epochs (restoring
the best weights). The loss is the weighted sum of the exits' losses. Light
augmentation (flips, shifts, brightness, contrast) runs inside the input
pipeline. Everything random is seeded from :attr:`TrainConfig.seed`.

:func:`fit_model` is the recipe behind ``mxn train`` and the default models:
train every exit together, fit per-exit thresholds on held-out calibration
data, then measure each exit and the early-exit cascade on test data the
model has never seen (:mod:`mxn.evaluation`). Splits that the data set does
not provide are carved out of the training split, class by class, with the
seed.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from .calibration import Calibration, calibrate_thresholds
from .evaluation import Evaluation, evaluate
from .images import ImageSet, stratified_split
from .losses import exit_loss, exit_weights
from .modelfile import MXNModel
from .network import MultiExitNetwork, build_network
from .runner import ExitRunner
from .spec import NetworkSpec
from .targets import TARGET_PRECISION
from .train_config import OPTIMIZERS as OPTIMIZERS  # the settings live in a module without TensorFlow
from .train_config import TrainConfig


@dataclass
class TrainResult:
    """What training did: per-epoch history, epochs run, wall time."""

    history: dict[str, list[float]] = field(default_factory=dict)
    epochs_run: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"history": self.history, "epochs_run": self.epochs_run, "seconds": self.seconds}


def train_network(
    network: MultiExitNetwork,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    config: TrainConfig | None = None,
) -> TrainResult:
    """Train every exit of ``network`` together on in-memory arrays.

    ``x_*`` are ``uint8`` (or 0-255 float) images at the network's input
    size; ``y_*`` integer labels, or per-image probability vectors over the
    classes (a teacher's softmax: distillation), or target vectors for
    embedding heads.
    Without validation data, the plateau and early-stopping rules watch the
    training loss.
    """
    config = config or TrainConfig()
    spec = network.spec
    _check_training_arrays(network, x_train, y_train, "training")
    if x_val is not None:
        _check_training_arrays(network, x_val, y_val, "validation")
    if spec.head == "classification" and config.loss == "cosine":
        raise ValueError("cosine loss is for embedding heads; use 'ce' or 'focal'")
    if spec.head == "embedding" and config.loss != "cosine":
        raise ValueError("embedding heads train by distillation: use loss='cosine'")

    soft = spec.head == "classification" and np.ndim(y_train) == 2
    if x_val is not None and spec.head == "classification" and np.ndim(y_val) != np.ndim(y_train):
        raise ValueError("training and validation targets must both be labels or both be probability vectors")
    keras.utils.set_random_seed(config.seed)
    weights = exit_weights(config.exit_weights, network.num_exits)
    names = network.exit_names
    network.model.compile(
        optimizer=_optimizer(config),
        loss={n: exit_loss(config.loss, config.gamma, soft=soft) for n in names},
        loss_weights=dict(zip(names, weights, strict=True)),
        metrics={n: ["accuracy"] for n in names} if spec.head == "classification" else None,
        jit_compile=False,
    )
    train_ds = _dataset(x_train, y_train, names, config, training=True)
    val_ds = _dataset(x_val, y_val, names, config, training=False) if x_val is not None else None
    monitor = "val_loss" if val_ds is not None else "loss"
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=config.plateau_factor, patience=config.plateau_patience, verbose=0
        ),
        keras.callbacks.EarlyStopping(
            monitor=monitor, patience=config.early_stopping_patience, restore_best_weights=True
        ),
    ]
    if config.progress:
        callbacks.append(ProgressBar(config.epochs, int(np.ceil(len(x_train) / config.batch_size))))
    start = time.perf_counter()
    hist = network.model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=0,
        shuffle=False,  # the dataset shuffles itself, seeded
    )
    seconds = time.perf_counter() - start
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return TrainResult(history=history, epochs_run=len(hist.epoch), seconds=seconds)


class ProgressBar(keras.callbacks.Callback):
    """A tqdm bar over every training step, with the epoch's loss and the deepest exit's accuracy."""

    def __init__(self, epochs: int, steps_per_epoch: int) -> None:
        super().__init__()
        self.total = epochs * steps_per_epoch
        self.bar: tqdm | None = None
        self.epoch = 0

    def on_train_begin(self, logs=None) -> None:
        # Redraw rarely when stderr is a log file rather than a terminal.
        interval = 0.1 if sys.stderr.isatty() else 15.0
        self.bar = tqdm(total=self.total, desc="training", unit="step", mininterval=interval)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None) -> None:
        if self.bar is None or not logs:
            return
        shown = {"epoch": self.epoch, "loss": f"{logs.get('loss', float('nan')):.3f}"}
        acc_keys = sorted(k for k in logs if k.startswith("val_exit_") and k.endswith("accuracy"))
        if acc_keys:
            shown["val_acc(last exit)"] = f"{logs[acc_keys[-1]]:.3f}"
        self.bar.set_postfix(shown)

    def on_train_end(self, logs=None) -> None:
        if self.bar is not None:
            self.bar.update(self.bar.total - self.bar.n)  # early stopping ends short
            self.bar.close()


def _optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=config.momentum)
    return keras.optimizers.Adam(learning_rate=config.learning_rate)


def _augmenter(seed: int, flip: bool) -> keras.Sequential:
    steps = [
        keras.layers.RandomTranslation(0.08, 0.08, fill_mode="reflect", seed=seed + 1),
        keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed + 2),
        keras.layers.RandomContrast(0.15, seed=seed + 3),
    ]
    if flip:
        steps.insert(0, keras.layers.RandomFlip("horizontal", seed=seed))
    return keras.Sequential(steps, name="augment")


def _dataset(x, y, names: list[str], config: TrainConfig, training: bool) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        ds = ds.shuffle(len(x), seed=config.seed, reshuffle_each_iteration=True)
    ds = ds.batch(config.batch_size)
    augment = _augmenter(config.seed, config.flip) if training and config.augment else None

    def to_model(images, labels):
        images = tf.cast(images, tf.float32)
        if augment is not None:
            images = tf.clip_by_value(augment(images, training=True), 0.0, 255.0)
        return images, {n: labels for n in names}

    return ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _check_training_arrays(network: MultiExitNetwork, x, y, what: str) -> None:
    size = network.spec.input_size
    if x is None or y is None:
        raise ValueError(f"{what} data needs both images and labels")
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1:] != (size, size, 3):
        raise ValueError(f"{what} images must have shape (N, {size}, {size}, 3), got {x.shape}")
    if len(x) != len(y):
        raise ValueError(f"{what}: {len(x)} images but {len(y)} labels")
    if len(x) == 0:
        raise ValueError(f"{what} data is empty")
    if network.spec.head == "classification" and np.ndim(y) == 2:
        y = np.asarray(y)
        classes = network.spec.num_classes
        if y.shape[1] != classes or y.min() < 0 or not np.allclose(y.sum(axis=1), 1.0, atol=1e-3):
            raise ValueError(
                f"{what} target vectors must be probabilities over the {classes} classes "
                f"(shape (N, {classes}), rows summing to 1), got shape {y.shape}"
            )
    elif network.spec.head == "classification":
        y = np.asarray(y)
        if y.ndim != 1 or y.min() < 0 or y.max() >= network.spec.num_classes:
            raise ValueError(
                f"{what} labels must be integers in [0, {network.spec.num_classes}), "
                f"got range [{y.min()}, {y.max()}]"
            )


# -- from data to a model file ---------------------------------------------------------------------------


@dataclass
class FitReport:
    """Everything :func:`fit_model` learnt about the model it made."""

    train: TrainResult
    calibration: Calibration
    evaluation: Evaluation
    split_sizes: dict[str, int]


def fit_model(
    spec: NetworkSpec,
    splits: dict[str, ImageSet],
    config: TrainConfig | None = None,
    target_precision: float = TARGET_PRECISION,
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

    runner = ExitRunner(network, batch_size=config.batch_size)
    calib_outputs = runner.all_exits(calib.images).outputs
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
    runner = teacher.runner(batch_size)
    last = teacher.spec.num_exits - 1
    out = {}
    for name, split in splits.items():
        if split.images.shape[1:3] != (teacher.spec.input_size,) * 2:
            raise ValueError(
                f"the teacher takes {teacher.spec.input_size} px images; the {name!r} split has "
                f"{split.images.shape[1]} px"
            )
        probabilities = runner.all_exits(split.images, exits=[last]).output(last)
        top = probabilities.argmax(axis=1).astype(split.labels.dtype)
        out[name] = ImageSet(split.images, top, list(teacher.classes), probabilities if soft else None)
    return out


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
