"""The jobs that make and measure models: ``mxn train``, ``mxn calibrate``, ``mxn evaluate``.

The network's defaults are :class:`mxn.spec.NetworkSpec`'s, the training
settings :class:`mxn.train_config.TrainConfig`'s, the target
:mod:`mxn.targets`'. Those modules import nothing heavy; TensorFlow loads
inside each job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mxn.spec import NetworkSpec
from mxn.targets import CONFIDENCE, TARGET_PRECISION
from mxn.train_config import TrainConfig

from .options import (
    Log,
    PathLike,
    as_paths,
    existing,
    float_list,
    given_model,
    int_list,
    load_tensorflow,
    say,
)

if TYPE_CHECKING:
    from mxn.calibration import Calibration
    from mxn.evaluation import Evaluation
    from mxn.modelfile import MXNModel
    from mxn.training import FitReport


@dataclass
class TrainedModel:
    """A model :func:`train` made: the model, where it was written, and the fitting report."""

    model: MXNModel
    path: Path
    report: FitReport

    def to_dict(self) -> dict[str, Any]:
        return {"model": str(self.path), "card": self.model.card()}


def train(
    data: PathLike | Sequence[PathLike],
    out: PathLike,
    backbone: str = NetworkSpec.backbone,
    width: float = 0.25,
    input_size: int = 64,
    exits: str | Sequence[int] | None = NetworkSpec.exits,
    stem: str = NetworkSpec.stem,
    aggregation: bool = NetworkSpec.aggregation,
    loss: str = TrainConfig.loss,
    gamma: float = TrainConfig.gamma,
    exit_weights: str | Sequence[float] | None = TrainConfig.exit_weights,
    epochs: int = TrainConfig.epochs,
    batch_size: int = TrainConfig.batch_size,
    optimizer: str = TrainConfig.optimizer,
    lr: float = TrainConfig.learning_rate,
    augment: bool = TrainConfig.augment,
    seed: int = TrainConfig.seed,
    target_precision: float = TARGET_PRECISION,
    init: PathLike | MXNModel | None = None,
    teacher: PathLike | MXNModel | None = None,
    soft_teacher: bool = False,
    progress: bool = True,
    log: Log | None = None,
) -> TrainedModel:
    """Train a multi-exit network on a class-per-folder image directory (``mxn train DATA``).

    ``data`` holds one folder per class, or ``train/ val/ calibration/ test/``
    folders that each hold the class folders; missing splits are carved from
    the training images. Several folders are merged split by split
    (:func:`mxn.images.merge_datasets`). Thresholds are calibrated on held-out
    images for ``target_precision`` and stored in the model file ``out``.

    ``init`` (a model file or loaded model of the same architecture and
    classes, any input size) starts from its weights instead of random ones.
    ``teacher`` labels every image with its top-1 answer instead of the
    folder's name (:func:`mxn.training.teacher_labels`): how the default ingest and
    query MXNs learn to agree with the ground-truth CNN. ``soft_teacher``
    trains on the teacher's probabilities instead of its top-1 (distillation).
    """
    if soft_teacher and teacher is None:
        raise ValueError("soft_teacher needs a teacher model")
    load_tensorflow()
    from mxn.evaluation import agreement
    from mxn.images import load_dataset, merge_datasets, resize_batch
    from mxn.modelfile import model_sha, save_model
    from mxn.training import fit_model, teacher_labels

    # the settings are checked before the images load, so a typo costs nothing
    spec = NetworkSpec(
        backbone=backbone,
        width=width,
        input_size=input_size,
        stem=stem,
        exits=int_list(exits, "exits"),
        aggregation=aggregation,
    )
    config = TrainConfig(
        loss=loss,
        gamma=gamma,
        exit_weights=float_list(exit_weights, "exit_weights"),
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        learning_rate=lr,
        augment=augment,
        seed=seed,
        progress=progress,
    )
    what = "data folder (DATA/CLASS/*.jpg)"
    roots = [existing(d, what, folder=True) for d in as_paths(data, "data", "data folder")]
    start, tutor = given_model(init, "init"), given_model(teacher, "teacher")
    size = input_size if tutor is None else tutor.spec.input_size
    say(log, f"loading {', '.join(map(str, roots))} at {size}x{size} ...")
    splits = merge_datasets([load_dataset(root, size) for root in roots])
    agreed: dict[str, float] = {}
    if tutor is not None:
        say(log, f"labelling every image with the teacher ({tutor.spec.backbone} x{tutor.spec.width}) ...")
        labelled = teacher_labels(splits, tutor, soft=soft_teacher)
        agreed = {k: agreement(splits[k], labelled[k]) for k in splits}
        shares = ", ".join(f"{k} {v:.1%}" for k, v in agreed.items())
        say(log, f"the teacher agrees with the folder labels on: {shares}")
        splits = {k: replace(v, images=resize_batch(v.images, input_size)) for k, v in labelled.items()}
    source = ", ".join(str(root.resolve()) for root in roots)
    model, report = fit_model(spec, splits, config, target_precision, source=source, init=start)
    if start is not None:
        model.training["init"] = {"sha256": model_sha(start), "input_size": start.spec.input_size}
    if tutor is not None:
        model.training["teacher"] = {
            "sha256": model_sha(tutor),
            "agreement_with_folders": agreed,
            "targets": "probabilities" if soft_teacher else "top-1",
        }
    return TrainedModel(model, save_model(model, out), report)


def _labelled_images(data: PathLike, model: MXNModel, prefer: str):
    """Images from ``data`` (or its ``prefer`` split) numbered by the model's classes."""
    from mxn.images import load_image_folder

    root = existing(data, "data folder (DATA/CLASS/*.jpg)", folder=True)
    root = root / prefer if (root / prefer).is_dir() else root
    return load_image_folder(root, model.spec.input_size, classes=model.classes)


def calibrate(
    model: PathLike,
    data: PathLike,
    target_precision: float = TARGET_PRECISION,
    confidence: float = CONFIDENCE,
    out: PathLike | None = None,
) -> Calibration:
    """Fit per-exit confidence thresholds on held-out images, into the model file (``mxn calibrate``).

    ``data`` is a class-per-folder directory with the model's class names (its
    ``calibration/`` sub-folder when it has one). The calibrated model is
    written to ``out``, or over ``model`` when ``out`` is ``None``.
    """
    load_tensorflow()
    from mxn.calibration import calibrate_thresholds
    from mxn.modelfile import load_model, save_model

    loaded = load_model(model)
    images = _labelled_images(data, loaded, prefer="calibration")
    outputs = loaded.runner().all_exits(images.images).outputs
    cal = calibrate_thresholds(outputs, images.labels, target_precision, confidence)
    loaded.thresholds, loaded.calibration = cal.thresholds, cal.to_dict()
    save_model(loaded, out or model)
    return cal


def evaluate(model: PathLike, data: PathLike) -> Evaluation:
    """Per-exit accuracy and the early-exit cascade's results on labelled images (``mxn evaluate``).

    ``data`` is a class-per-folder directory (its ``test/`` sub-folder when it has one).
    """
    load_tensorflow()
    from mxn.evaluation import evaluate as evaluate_model
    from mxn.modelfile import load_model

    loaded = load_model(model)
    return evaluate_model(loaded, _labelled_images(data, loaded, prefer="test"))
