"""The card of a ``.mxn`` model file: what the file says about itself, readable without TensorFlow.

A ``.mxn`` file is a zip of two members, ``card.json`` (plain JSON: the
architecture, class names, preprocessing, thresholds, provenance) and
``model.weights.h5``. Reading and checking the card needs only the zip and
JSON, so ``mxn info`` and every "is this a model file?" check answer at once;
:mod:`mxn.modelfile` builds the network and loads the weights on top of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

from .jsonfile import check_format

FORMAT = "mxn-model"
FORMAT_VERSION = 1
CARD = "card.json"
WEIGHTS = "model.weights.h5"
SUFFIX = ".mxn"


class ModelFileError(Exception):
    """A model file that is missing, corrupt, truncated or does not match its card."""


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The card of a model file, checked but without loading weights."""
    card, _ = read_members(Path(path), with_weights=False)
    return card


def read_members(path: Path, with_weights: bool) -> tuple[dict[str, Any], bytes]:
    """The checked card and (when ``with_weights``) the weights' bytes; :class:`ModelFileError` otherwise."""
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory, expected a {SUFFIX} model file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = {CARD, WEIGHTS} - names
            if missing:
                raise ModelFileError(f"{path}: not an mxn model file (missing {sorted(missing)})")
            raw_card = zf.read(CARD)
            weights = zf.read(WEIGHTS) if with_weights else b""
    except (zipfile.BadZipFile, zlib.error) as err:
        raise ModelFileError(f"{path}: not an mxn model file, or truncated/corrupt ({err})") from err
    except (zipfile.LargeZipFile, OSError, EOFError) as err:
        raise ModelFileError(f"{path}: cannot read the model file: {err}") from err
    try:
        card = json.loads(raw_card)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{path}: the model card is not valid JSON: {err}") from err
    return check_format(card, path, FORMAT, FORMAT_VERSION, ModelFileError, "an mxn model card"), weights


def sha256(data: bytes) -> str:
    """The checksum the card records for its weights."""
    return hashlib.sha256(data).hexdigest()
