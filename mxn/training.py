"""Training a multi-exit network on arrays (section 5.2.1's recipe).

SGD with momentum 0.9, the learning rate cut by 10 when the validation loss
plateaus, and early stopping instead of a fixed number of epochs (restoring
the best weights). The loss is the weighted sum of the exits' losses. Light
augmentation (flips, shifts, brightness, contrast) runs inside the input
pipeline. Everything random is seeded from :attr:`TrainConfig.seed`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from mxn.losses import exit_loss, exit_weights
from mxn.network import MultiExitNetwork

OPTIMIZERS = ("sgd", "adam")


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
        exit_loss(self.loss, self.gamma)  # validates the name and gamma
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
