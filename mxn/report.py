"""Writing results as JSON: one function for the CLI and every benchmark script."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _jsonable(value: Any) -> Any:
    """NumPy arrays and scalars, and objects with ``to_dict``, as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` to ``path`` (parents created), indented, NumPy values converted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_jsonable))
    return path
