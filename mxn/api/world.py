"""The synthetic traffic world's jobs: ``mxn world video`` (a clip and its truth), ``mxn world crops``.

Their defaults are the world's own, :mod:`mxn.datasets.world.settings`' (a
clip's seed, frame rate and size; the crops' :class:`~mxn.datasets.world.settings.CropConfig`),
which imports nothing heavy; the renderer (OpenCV, scikit-image) loads inside each job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mxn.datasets.world.settings import FPS, FRAME_SIZE, SEED, CropConfig

from .options import PathLike, name_list, parse_size

if TYPE_CHECKING:
    from mxn.datasets.world.video import RenderedClip


def render_traffic_video(
    out: PathLike,
    preset: str = "downtown",
    seconds: float = 60.0,
    seed: int = SEED,
    size: str | Sequence[int] = f"{FRAME_SIZE[0]}x{FRAME_SIZE[1]}",
    fps: float = FPS,
    progress: bool = True,
) -> RenderedClip:
    """Render a synthetic traffic clip and its per-frame truth (``mxn world video``).

    Writes ``out`` (``.mp4``) and ``NAME.truth.jsonl`` beside it; the same
    seed always gives the same clip. ``size`` is ``"WIDTHxHEIGHT"`` or a pair.
    """
    from mxn.datasets.world.video import render_clip

    width, height = parse_size(size, "size")
    return render_clip(out, preset, seconds, seed=seed, size=(width, height), fps=fps, progress=progress)


def render_crops(
    out: PathLike,
    size: int = CropConfig.size,
    seconds: float | None = None,
    presets: str | Sequence[str] | None = None,
    seed: int = SEED,
    source: str = CropConfig.source,
    every: int = CropConfig.every,
    max_per_track: int = CropConfig.max_per_track,
    progress: bool = True,
) -> dict[str, Any]:
    """Cut a class-per-folder crops data set from rendered traffic worlds (``mxn world crops``).

    ``seconds`` is the simulated time per preset for the train split (the
    others get 20-30% of it); ``None`` keeps the data set's defaults. A track
    gives a crop every ``every`` frames, ``max_per_track`` at most. Returns
    the manifest written beside the crops (counts per split and class, seeds,
    settings).
    """
    from mxn.datasets.world.crop_set import build_crops

    options: dict[str, Any] = {"size": size, "source": source, "every": every, "max_per_track": max_per_track}
    if seconds is not None:
        options["seconds"] = {"train": seconds, "val": 0.2 * seconds, "calibration": 0.3 * seconds,
                              "test": 0.3 * seconds}  # fmt: skip
    chosen = name_list(presets)
    if chosen:
        options["presets"] = chosen
    return build_crops(out, CropConfig(**options), seed=seed, progress=progress)
