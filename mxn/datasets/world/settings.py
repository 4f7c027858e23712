"""What the traffic world renders unless told otherwise, in one module that imports nothing heavy.

A clip's frame rate, size and seed (:func:`mxn.datasets.world.video.render_clip`,
:class:`mxn.datasets.world.render.TrafficWorld`) and the crops data set's
settings (:class:`CropConfig`, for :func:`mxn.datasets.world.crop_set.build_crops`)
are read from here by the renderer, the Python API and the command line: the
renderer loads OpenCV and scikit-image, this module loads neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .presets import PRESETS, get_preset

#: A world's seed (a clip's, a crops data set's), and a clip's frames per second and frame size (width,
#: height), unless told otherwise.
SEED = 0
FPS = 30.0
FRAME_SIZE = (640, 360)

#: The crops data set's splits, each its own simulation.
SPLITS: tuple[str, ...] = ("train", "val", "calibration", "test")
#: Where the crops' boxes come from: the world's truth (jittered) or ingest's background-subtraction blobs.
SOURCES: tuple[str, ...] = ("truth", "blobs")


@dataclass
class CropConfig:
    """What to cut, and how much.

    Args:
        size: side of the square crops in pixels.
        source: ``"truth"`` (the world's boxes, jittered) or ``"blobs"``
            (background-subtraction boxes labelled by their best truth
            overlap); see the module docstring.
        seconds: simulated seconds per preset, per split.
        presets: camera presets to draw from.
        every: frames between two crops of the same track.
        max_per_track: crops per track at most.
        min_height: smallest box height (pixels) worth a crop.
        max_occluded / max_truncated: hide badly occluded or cut-off objects.
        jitter: box jitter (share of the box size) that mimics detector boxes.
        jpeg_quality: range of JPEG qualities for re-compression.
        warmup: simulated seconds before cutting (the road fills up).
    """

    size: int = 64
    seconds: dict[str, float] = field(
        default_factory=lambda: {"train": 300.0, "val": 60.0, "calibration": 90.0, "test": 90.0}
    )
    presets: tuple[str, ...] = tuple(PRESETS)
    every: int = 15
    max_per_track: int = 4
    min_height: int = 12
    max_occluded: float = 0.4
    max_truncated: float = 0.3
    jitter: float = 0.12
    jpeg_quality: tuple[int, int] = (35, 95)
    warmup: float = 20.0
    source: str = "truth"
    min_iou: float = 0.3

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown crop source {self.source!r}; choose one of {SOURCES}")
        if not 0 < self.min_iou <= 1:
            raise ValueError(f"min_iou must lie in (0, 1], got {self.min_iou}")
        for name in self.presets:
            get_preset(name)
        unknown = set(self.seconds) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown splits {sorted(unknown)}; choose from {SPLITS}")
        if self.size < 16 or self.every < 1 or self.max_per_track < 1:
            raise ValueError("size must be >= 16, every and max_per_track >= 1")
