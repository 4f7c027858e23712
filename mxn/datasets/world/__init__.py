"""The traffic world: synthetic traffic-camera videos with ground truth.

No traffic video, labelled image set or pretrained object classifier can be
downloaded here, so mxn renders its own: :mod:`~mxn.datasets.world.presets` (the
cameras), :mod:`~mxn.datasets.world.sprites` (the seven object classes),
:mod:`~mxn.datasets.world.render` (simulation and rendering), :mod:`~mxn.datasets.world.video`
(clips with per-frame truth) and :mod:`~mxn.datasets.world.crop_set` (the class-per-folder
training set), their defaults in :mod:`~mxn.datasets.world.settings`.

The names callers use are re-exported here (``from mxn.datasets.world import
render_clip``), each loaded from its module on first use: listing the camera
presets must not pay for OpenCV and scikit-image, which rendering needs.
"""

from __future__ import annotations

from mxn.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".presets": ("PRESETS", "Preset", "get_preset"),
        ".sprites": ("CLASSES",),
        ".render": ("TrafficWorld",),
        ".video": ("RenderedClip", "render_clip"),
        ".settings": ("SPLITS", "CropConfig"),
        ".crop_set": ("build_crops",),
    },
    globals(),
)
