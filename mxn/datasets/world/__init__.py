"""The traffic world: synthetic traffic-camera videos with ground truth.

No traffic video, labelled image set or pretrained object classifier can be
downloaded here, so mxn renders its own: :mod:`~mxn.datasets.world.presets` (the
cameras), :mod:`~mxn.datasets.world.sprites` (the seven object classes),
:mod:`~mxn.datasets.world.render` (simulation and rendering), :mod:`~mxn.datasets.world.video`
(clips with per-frame truth) and :mod:`~mxn.datasets.world.crop_set` (the class-per-folder
training set).

The names callers use are re-exported here (``from mxn.datasets.world import
render_clip``), each loaded from its module on first use: listing the camera
presets must not pay for OpenCV and scikit-image, which rendering needs.
"""

from __future__ import annotations

import importlib
from typing import Any

#: The module of this package that defines each re-exported name.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "presets": ("PRESETS", "Preset", "get_preset"),
    "sprites": ("CLASSES",),
    "render": ("TrafficWorld",),
    "video": ("RenderedClip", "render_clip"),
    "crop_set": ("SPLITS", "CropConfig", "build_crops"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """A re-exported name, imported from its module the first time it is asked for."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups find it without this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
