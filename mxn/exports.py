"""Re-exports loaded on first use: a package names its public objects without importing their modules.

``import mxn`` and listing the camera presets must not wait for TensorFlow or
OpenCV, yet each package should offer its public names in one place (as
scikit-learn's packages do). :func:`lazy_exports` gives a package the
module-level ``__getattr__`` and ``__dir__`` that import a name's module the
first time the name is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]], namespace: dict[str, Any]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package`` re-exporting ``exports``.

    ``exports`` maps a module (absolute, or relative to ``package`` with a
    leading dot) to the names it defines; ``namespace`` is the package's
    ``globals()``, where a loaded name is kept so later look-ups skip this.
    """
    module_of = {name: module for module, names in exports.items() for name in names}

    def get(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def names() -> list[str]:
        return sorted({*namespace, *module_of})

    return sorted(module_of), get, names
