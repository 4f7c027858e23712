"""One file per model: Keras weights plus a JSON card, in a zip.

A ``.mxn`` file holds two members:

* ``card.json``: the architecture (a :class:`~mxn.spec.NetworkSpec`), the
  class names, the input size and preprocessing, calibrated thresholds, and how
  the model was trained (data, loss, epochs, seed, history, versions);
* ``model.weights.h5``: the weights, with their SHA-256 recorded in the card.

Loading never deserialises code: the card is plain JSON, the architecture is
rebuilt by :func:`~mxn.network.build_network` from the spec, and only numeric
arrays are read from the HDF5 file. Anything wrong (not a zip, truncated, a
member missing, a card that does not parse, weights whose checksum or shapes
do not match the card) raises :class:`ModelFileError` with a message that
names the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .card import (
    CARD,
    FORMAT,
    FORMAT_VERSION,
    SUFFIX,
    WEIGHTS,
    ModelFileError,
    read_card,
    read_members,
    sha256,
)
from .network import MultiExitNetwork, build_network
from .runner import ExitRunner
from .spec import NetworkSpec, SpecError

# the card's names, re-exported: a model file's reader and writer are used from here
__all__ = [
    "CARD",
    "FORMAT",
    "FORMAT_VERSION",
    "SUFFIX",
    "WEIGHTS",
    "MXNModel",
    "ModelFileError",
    "load_model",
    "model_sha",
    "read_card",
    "save_model",
]


@dataclass
class MXNModel:
    """A network with everything needed to use it: class names, thresholds, provenance."""

    network: MultiExitNetwork
    classes: list[str]
    thresholds: list[float | None] | None = None
    calibration: dict[str, Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = self.network.spec
        if spec.head == "classification" and len(self.classes) != spec.num_classes:
            raise ValueError(f"{len(self.classes)} class names for a {spec.num_classes}-class network")
        if self.thresholds is not None and len(self.thresholds) != spec.num_exits:
            raise ValueError(f"{len(self.thresholds)} thresholds for {spec.num_exits} exits")

    @property
    def spec(self) -> NetworkSpec:
        return self.network.spec

    def runner(self, batch_size: int = 64) -> ExitRunner:
        return ExitRunner(self.network, batch_size=batch_size)

    def card(self) -> dict[str, Any]:
        """The JSON card (without the weights checksum, added on save)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "spec": self.spec.to_dict(),
            "classes": list(self.classes),
            "preprocessing": {
                "input_size": self.spec.input_size,
                "channels": "RGB",
                "input_range": [0, 255],
                "scaling": "divided by 255 inside the network",
            },
            "thresholds": self.thresholds,
            "calibration": self.calibration,
            "training": self.training,
        }


def model_sha(model: MXNModel) -> str:
    """The identity of a model: SHA-256 over its class names and weights.

    Indexes and cached query verdicts record it, so results made by one
    model are never mistaken for another's.
    """
    digest = hashlib.sha256("\n".join(model.classes).encode())
    for weight in model.network.model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()


def save_model(model: MXNModel, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path`` atomically (a temp file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        weights = Path(tmp) / WEIGHTS
        # Save from a fresh, never-compiled copy: a trained model would also
        # write its optimizer's state (Adam's moments: twice the weights again).
        clean = build_network(model.spec)
        clean.model.set_weights(model.network.model.get_weights())
        clean.model.save_weights(weights)
        card = model.card()
        card["weights_sha256"] = sha256(weights.read_bytes())
        staged = Path(tmp) / "model.zip"
        with zipfile.ZipFile(staged, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(CARD, json.dumps(card, indent=2, sort_keys=True))
            zf.write(weights, WEIGHTS)
        os.replace(staged, path)
    return path


def load_model(path: str | os.PathLike) -> MXNModel:
    """Load a ``.mxn`` file written by :func:`save_model`."""
    path = Path(path)
    card, weights_bytes = read_members(path, with_weights=True)
    if sha256(weights_bytes) != card.get("weights_sha256"):
        raise ModelFileError(f"{path}: the weights do not match the card's checksum (corrupt file)")
    try:
        spec = NetworkSpec.from_dict(card["spec"])
    except (SpecError, TypeError) as err:
        raise ModelFileError(f"{path}: the card's architecture is invalid: {err}") from err
    network = build_network(spec)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / WEIGHTS
        weights.write_bytes(weights_bytes)
        try:
            # Keras only warns when parts of the file do not match and keeps
            # fresh weights there; a model file must match exactly.
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                network.model.load_weights(weights)
        except Exception as err:  # Keras raises ValueError/KeyError/OSError/UserWarning variously
            raise ModelFileError(
                f"{path}: the weights do not fit the architecture in the card: {err}"
            ) from err
    try:
        return MXNModel(
            network=network,
            classes=[str(c) for c in card.get("classes", [])],
            thresholds=card.get("thresholds"),
            calibration=card.get("calibration"),
            training=card.get("training") or {},
        )
    except ValueError as err:
        raise ModelFileError(f"{path}: {err}") from err
