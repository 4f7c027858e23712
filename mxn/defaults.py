"""The default models, trained on the traffic world and shipped with mxn.

Three model files live in ``mxn/default_models/``:

* ``ingest.mxn``: the cheap ingest MXN (ResNet-18 layout, width 0.25, 64 px,
  5 exits with feature aggregation, cross-entropy);
* ``query.mxn``: the query MXN (same layout, focal loss, so confident exits
  are right);
* ``gt.mxn``: the ground-truth CNN (ResNet-18 layout, width 0.5, 128 px, one
  exit after the last block: about 14x the MACs of all five cheap exits).

The ground-truth CNN is trained on the world's truth crops and on the
background-subtraction blobs ingest finds; the two cheap MXNs are fine-tuned
on blobs labelled by it (``mxn train --teacher``), as Focus trains its cheap
CNN on the ground-truth CNN's labels, so that the index and the early exits
agree with the reference. ``scripts/build_default_models.sh`` holds the exact
commands, and
``docs/MODELS.md`` what they reached. They are small enough to commit, so the
main job runs offline from a fresh clone with no training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .images import load_image_folder
from .modelfile import ModelFileError, MXNModel, load_model

MODEL_DIR = Path(__file__).with_name("default_models")
DEFAULT_MODELS: dict[str, str] = {
    "ingest": "the cheap ingest MXN: 5 exits, feature aggregation, cross-entropy",
    "query": "the query MXN: 5 exits, feature aggregation, focal loss",
    "gt": "the ground-truth CNN: a wider single-exit network at 128 px",
}

#: What the world's test crops must show (issue: the trade-offs must be real).
FIRST_EXIT_RANGE = (0.60, 0.90)
GT_MINIMUM = 0.98


def default_model_path(name: str) -> Path:
    """Where the default model ``name`` lives; a clear error if it is missing."""
    if name not in DEFAULT_MODELS:
        raise ValueError(f"unknown default model {name!r}; choose one of {sorted(DEFAULT_MODELS)}")
    path = MODEL_DIR / f"{name}.mxn"
    if not path.exists():
        raise ModelFileError(
            f"{path}: the default {name} model is missing; rebuild it with "
            "scripts/build_default_models.sh (or pass --model FILE)"
        )
    return path


def load_default_model(name: str) -> MXNModel:
    return load_model(default_model_path(name))


def difficulty(data_dir: str | Path, ingest: MXNModel | None = None, gt: MXNModel | None = None) -> dict:
    """Top-1 of the cheap first exit and of the ground-truth CNN on the test crops.

    The first should be clearly wrong sometimes (60-90%), the second nearly
    always right (>= 98%): that is what makes the trade-offs real.
    """
    ingest = ingest or load_default_model("ingest")
    gt = gt or load_default_model("gt")
    root = Path(data_dir) / "test"
    figures = {}
    for name, model, exit_index in (("first_exit", ingest, 0), ("gt", gt, gt.spec.num_exits - 1)):
        data = load_image_folder(root, model.spec.input_size, classes=model.classes)
        out = model.runner().all_exits(data.images, exits=[exit_index]).outputs[0]
        figures[name] = float(np.mean(out.argmax(axis=1) == data.labels))
    figures["items"] = len(data)
    low, high = FIRST_EXIT_RANGE
    figures["first_exit_in_range"] = low <= figures["first_exit"] <= high
    figures["gt_high_enough"] = figures["gt"] >= GT_MINIMUM
    return figures
