"""Shared fixtures: tiny networks and one small trained model for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from mxn.datasets.digits import digits
from mxn.defaults import load_default_model
from mxn.images import ImageSet
from mxn.modelfile import MXNModel
from mxn.spec import NetworkSpec
from mxn.training import TrainConfig, fit_model

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


@pytest.fixture(scope="session")
def models() -> dict[str, MXNModel]:
    """The bundled ingest MXN, query MXN and ground-truth CNN, loaded once per session (read-only use)."""
    return {name: load_default_model(name) for name in ("ingest", "query", "gt")}


# -- databases: SQLite files and a throwaway PostgreSQL (tests/postgres.py) ------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of the ``postgres`` database of a private server started once per session (on first use).

    Missing PostgreSQL binaries fail the test with an install hint: skipping
    would silently drop half of the storage coverage.
    """
    import postgres

    try:
        postgres.find_bindir()
    except postgres.PostgresUnavailableError as err:
        pytest.fail(str(err), pytrace=False)
    with postgres.throwaway_postgres() as url:
        yield url


@pytest.fixture
def postgres_db(postgres_server: str) -> Iterator[str]:
    """URL of a fresh, empty database on the session's server, dropped after the test."""
    import postgres

    url = postgres.create_database(postgres_server)
    yield url
    postgres.drop_database(postgres_server, url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh empty database URL, once per backend: storage and ingest must behave the same on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_db")
