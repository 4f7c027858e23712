"""Shared fixtures: tiny networks and one small trained model for the whole session."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from mxn.fit import fit_model
from mxn.images import ImageSet
from mxn.modelfile import MXNModel
from mxn.sample_data import digits
from mxn.spec import NetworkSpec
from mxn.training import TrainConfig

#: The tests' standard tiny network: ResNet-18 layout, 16 channels at the first
#: stage, 32 px input, 5 exits.
TINY = NetworkSpec(input_size=32, width=0.25, num_classes=4)


@pytest.fixture
def tiny_spec() -> NetworkSpec:
    return TINY


@pytest.fixture
def random_images() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (37, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def digit_data() -> ImageSet:
    return digits(size=32, seed=0)


@pytest.fixture(scope="session")
def trained(digit_data) -> tuple[MXNModel, object]:
    """A tiny 5-exit MXN trained a few epochs on the digits, calibrated and evaluated."""
    config = TrainConfig(epochs=8, optimizer="adam", learning_rate=0.003, flip=False, progress=False, seed=1)
    spec = NetworkSpec(input_size=32, width=0.25)
    return fit_model(spec, {"all": digit_data}, config, target_precision=0.95, source="digits")
