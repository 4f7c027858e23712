"""A contact sheet: result frames in a grid, the answer's boxes drawn on them."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from mxn.media.text import draw_text, label_size
from mxn.media.video import VideoError, read_frames

from .result import QueryResult

BOX_COLOUR = (40, 220, 40)  # RGB
TEXT_COLOUR = (255, 255, 255)
#: Pixel sizes of the tiles' captions and of the empty answer's message (DejaVu Sans, any script).
CAPTION_SIZE = 13
MESSAGE_SIZE = 24
CAPTION_PAD = (2, 0)


def pick_frames(result: QueryResult, limit: int) -> list[tuple[int, int]]:
    """Up to ``limit`` (answer index, frame) pairs spread evenly over the answer, in video order."""
    every = [(k, f) for k, video in enumerate(result.videos) for f in video.frames]
    if len(every) <= limit:
        return every
    picks = np.linspace(0, len(every) - 1, limit).round().astype(int)
    return [every[i] for i in sorted(set(picks.tolist()))]


def _tile(image: np.ndarray, boxes: list[tuple[int, int, int, int]], caption: str, width: int) -> np.ndarray:
    """The frame scaled to ``width``, its boxes drawn after scaling (crisp at any size), a caption on top.

    The caption names the video, whose file name may be in any script (:func:`mxn.media.text.draw_text`).
    """
    scale = width / image.shape[1]
    tile = cv2.resize(image, (width, round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    for box in boxes:
        x1, y1, x2, y2 = (round(v * scale) for v in box)
        cv2.rectangle(tile, (x1, y1), (x2, y2), BOX_COLOUR, 2)
    tile[: label_size(caption, CAPTION_SIZE, CAPTION_PAD)[1]] = 0  # a black band as high as the caption
    draw_text(tile, caption, (2, 0), CAPTION_SIZE, TEXT_COLOUR, pad=CAPTION_PAD)
    return tile


def sheet_image(result: QueryResult, limit: int = 24, columns: int = 6, tile_width: int = 240) -> np.ndarray:
    """The contact sheet as an RGB array: up to ``limit`` answer frames with their boxes, in a grid.

    The frames are decoded again from the indexed videos, so those files
    must still be where they were ingested from. An empty answer gives a
    sheet that says so. (An array, so a report can embed it without a file.)
    """
    if limit < 1 or columns < 1 or tile_width < 32:
        raise ValueError("limit and columns must be >= 1 and tile_width >= 32")
    tiles: list[np.ndarray] = []
    by_video: dict[int, list[int]] = {}
    for k, frame in pick_frames(result, limit):
        by_video.setdefault(k, []).append(frame)
    for k, frames in by_video.items():
        video = result.videos[k]
        boxes: dict[int, list] = {}
        for hit in video.hits:
            boxes.setdefault(hit.frame, []).append(hit.box)
        try:
            for frame in read_frames(video.path, frames, fps=video.fps):
                caption = f"{video.name} {frame.time:7.2f}s #{frame.index}"
                tiles.append(_tile(frame.image, boxes[frame.index], caption, tile_width))
        except VideoError as err:
            raise VideoError(f"the contact sheet decodes the answer's frames again: {err}") from err
    if not tiles:
        sheet = np.zeros((60, 4 * tile_width, 3), np.uint8)
        draw_text(sheet, f"no frames with {result.label}", (8, 14), MESSAGE_SIZE, TEXT_COLOUR)
        return sheet
    height = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0))) for t in tiles]
    columns = min(columns, len(tiles))
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[r : r + columns]) for r in range(0, len(tiles), columns)]
    return np.vstack(rows)


def contact_sheet(
    result: QueryResult, path: str | os.PathLike, limit: int = 24, columns: int = 6, tile_width: int = 240
) -> Path:
    """Write :func:`sheet_image` as a PNG; returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: the contact sheet is a .png file")
    sheet = sheet_image(result, limit, columns, tile_width)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: cannot write the contact sheet")
    return path
