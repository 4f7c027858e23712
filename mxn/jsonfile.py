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


def check_format(
    data: Any, source: object, fmt: str, version: int, error: type[Exception], what: str, made_by: str = ""
) -> dict[str, Any]:
    """``data`` if it is a JSON object of format ``fmt`` at ``version``; else ``error`` naming ``source``.

    Every file mxn writes for itself (model cards, thresholds files) says what
    it is and in which version, so a wrong or newer file is refused with a
    message, never half-read.
    """
    hint = f"; {made_by} writes one" if made_by else ""
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise error(f'{source}: not {what} (its "format" is not {fmt!r}{hint})')
    if data.get("format_version") != version:
        raise error(
            f"{source}: {what} format version {data.get('format_version')!r} is not supported "
            f"(this mxn reads version {version})"
        )
    return data


def read_format_json(
    path: str | os.PathLike, fmt: str, version: int, error: type[Exception], what: str, made_by: str = ""
) -> dict[str, Any]:
    """Read a JSON file that :func:`check_format` accepts; a missing or unreadable one is ``error`` too."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        made = f" (make one with {made_by})" if made_by else ""
        raise error(f"{path}: no such file{made}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{path}: not {what}: cannot read it as JSON ({err})") from err
    return check_format(data, path, fmt, version, error, what, made_by)
