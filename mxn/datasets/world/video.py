"""Writing the world to a video file with its ground truth, and reading the truth back.

A rendered clip is two files side by side:

* ``NAME.mp4``: the frames (MPEG-4 Part 2, ``mp4v``, which OpenCV can write
  without extra codecs; transcode with ffmpeg if H.264 is wanted);
* ``NAME.truth.jsonl``: JSON lines. The first line is a header
  ``{"world": {"preset", "seed", "width", "height", "fps", "frames",
  "classes"}}``; every following line is one frame,
  ``{"frame": i, "time": t, "objects": [{"track", "class", "box": [x1, y1,
  x2, y2], "occluded", "truncated"}, ...]}``, with boxes in pixels, clipped
  to the frame, ``occluded`` the share of the box covered by nearer objects
  and ``truncated`` the share of the object outside the frame.

Both are written under temporary names and renamed when complete, so a
killed render never leaves a clip that looks finished.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm.auto import tqdm

from .presets import get_preset
from .render import TrafficWorld
from .settings import FPS, FRAME_SIZE, SEED

TRUTH_SUFFIX = ".truth.jsonl"


@dataclass
class RenderedClip:
    """Where a clip was written, and how fast."""

    video: Path
    truth: Path
    frames: int
    seconds: float
    render_fps: float


def truth_path(video: str | os.PathLike) -> Path:
    """The truth file that belongs to ``video``."""
    video = Path(video)
    return video.with_name(video.stem + TRUTH_SUFFIX)


def render_clip(
    out: str | os.PathLike,
    preset: str,
    seconds: float,
    seed: int = SEED,
    size: tuple[int, int] = FRAME_SIZE,
    fps: float = FPS,
    progress: bool = True,
) -> RenderedClip:
    """Render ``seconds`` of a camera preset to ``out`` (an ``.mp4``) and its truth file."""
    import time

    out = Path(out)
    if out.suffix.lower() not in (".mp4", ".avi"):
        raise ValueError(f"{out}: the video name must end in .mp4 or .avi")
    out.parent.mkdir(parents=True, exist_ok=True)
    world = TrafficWorld(get_preset(preset), seed=seed, size=size, fps=fps)
    total = round(seconds * fps)
    tmp_video = out.with_name(f".{out.stem}.part{out.suffix}")
    tmp_truth = out.with_name(f".{out.stem}.part{TRUTH_SUFFIX}")
    writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {out} (no mp4v encoder?)")
    start = time.perf_counter()
    try:
        with open(tmp_truth, "w") as truth:
            header = {
                "preset": preset,
                "seed": seed,
                "width": size[0],
                "height": size[1],
                "fps": fps,
                "frames": total,
                "classes": list(world.preset.classes),
            }
            truth.write(json.dumps({"world": header}) + "\n")
            for frame in tqdm(world.frames(count=total), total=total, desc=f"render {out.name}",
                              unit="frame", disable=not progress):  # fmt: skip
                writer.write(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
                line = {
                    "frame": frame.index,
                    "time": round(frame.time, 4),
                    "objects": [o.to_dict() for o in frame.objects],
                }
                truth.write(json.dumps(line) + "\n")
    finally:
        writer.release()
    elapsed = time.perf_counter() - start
    os.replace(tmp_video, out)
    os.replace(tmp_truth, truth_path(out))
    return RenderedClip(out, truth_path(out), total, elapsed, total / max(elapsed, 1e-9))


def read_truth(path: str | os.PathLike) -> tuple[dict, Iterator[dict]]:
    """The header and a lazy iterator over the frames of a truth file (or of its video)."""
    path = Path(path)
    if not path.name.endswith(TRUTH_SUFFIX):
        path = truth_path(path)
    with open(path) as handle:
        first = handle.readline()
    try:
        header = json.loads(first)["world"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a world truth file (bad header line)") from err

    def frames() -> Iterator[dict]:
        with open(path) as lines:
            next(lines)
            for line in lines:
                if line.strip():
                    yield json.loads(line)

    return header, frames()
