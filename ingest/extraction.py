"""Finding moving objects: background subtraction, then connected components to boxes.

A fixed traffic camera sees mostly background, so the cheapest object
proposals are the pixels that differ from a learned background (OpenCV's
MOG2, shadows detected and dropped). Morphology closes the holes in a
vehicle's mask and removes speckle; connected components above a minimum
area become boxes.

:class:`FrameChangeTest` is DeepMon's cheap static-frame test (chapter 3):
per-block colour histograms compared with chi-square distance against the
last frame that was processed. A frame in which no block changed can be
skipped before any background model or CNN work.
"""

from __future__ import annotations

import cv2
import numpy as np

from .config import ExtractorConfig  # its settings live with the run's, in a module without OpenCV


def mask_to_boxes(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Boxes ``(x1, y1, x2, y2)`` (exclusive ends) of ``mask``'s 8-connected blobs of area >= ``min_area``.

    Boxes come sorted top-to-bottom, left-to-right, so extraction is
    deterministic.
    """
    count, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    keep = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= min_area]
    if not keep:
        return np.zeros((0, 4), np.int32)
    s = stats[keep]
    boxes = np.stack(
        [
            s[:, cv2.CC_STAT_LEFT],
            s[:, cv2.CC_STAT_TOP],
            s[:, cv2.CC_STAT_LEFT] + s[:, cv2.CC_STAT_WIDTH],
            s[:, cv2.CC_STAT_TOP] + s[:, cv2.CC_STAT_HEIGHT],
        ],
        axis=1,
    ).astype(np.int32)
    order = np.lexsort((boxes[:, 0], boxes[:, 1]))
    return boxes[order]


class ObjectExtractor:
    """A background model that turns frames into object boxes.

    Call :meth:`warm` with the frames before the first one you want objects
    from (ingest warms on the frames just before each chunk, so a resumed or
    split run sees exactly what an uninterrupted one does), then
    :meth:`extract` for each frame.
    """

    def __init__(self, config: ExtractorConfig | None = None) -> None:
        self.config = config or ExtractorConfig()
        c = self.config
        self._model = cv2.createBackgroundSubtractorMOG2(
            history=c.history, varThreshold=c.var_threshold, detectShadows=c.shadows
        )
        self._model.setShadowThreshold(c.shadow_threshold)
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (c.open_px, c.open_px))
        self._close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (c.close_px, c.close_px))

    def shrink(self, image: np.ndarray) -> np.ndarray:
        """``image`` at the scale the background model works at (what :meth:`warm` needs)."""
        s = self.config.scale
        if s == 1.0:
            return image
        return cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)

    def warm(self, image: np.ndarray, shrunk: bool = False) -> None:
        """Learn from ``image`` (already :meth:`shrink`-ed when ``shrunk``) without reporting objects."""
        self._model.apply(image if shrunk else self.shrink(image))

    def foreground(self, image: np.ndarray) -> np.ndarray:
        """The cleaned foreground mask (at the model's scale), learning from ``image``."""
        raw = self._model.apply(self.shrink(image))
        mask = np.where(raw == 255, 255, 0).astype(np.uint8)  # 127 marks shadows
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open)
        return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close)

    def extract(self, image: np.ndarray) -> np.ndarray:
        """Boxes ``(x1, y1, x2, y2)`` in full-frame pixels of the moving objects in ``image``."""
        c = self.config
        boxes = mask_to_boxes(self.foreground(image), c.min_area)
        if c.scale != 1.0 and len(boxes):
            h, w = image.shape[:2]
            boxes = np.round(boxes / c.scale).astype(np.int32)
            boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
            boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        return boxes[sides >= c.min_side]


def block_histograms(image: np.ndarray, grid: int, bins: int) -> np.ndarray:
    """Normalised joint colour histograms of a ``grid x grid`` tiling: shape (grid*grid, bins**3)."""
    small = cv2.resize(image, (grid * 16, grid * 16), interpolation=cv2.INTER_AREA)
    q = (small.astype(np.int32) * bins) // 256
    codes = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    blocks = codes.reshape(grid, 16, grid, 16).transpose(0, 2, 1, 3).reshape(grid * grid, 256)
    hist = np.stack([np.bincount(b, minlength=bins**3) for b in blocks]).astype(np.float32)
    return hist / 256.0


def chi_square(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise chi-square distance between histograms (0 = identical, 2 = disjoint)."""
    total = a + b
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, (a - b) ** 2 / safe, 0.0).sum(axis=-1)


class FrameChangeTest:
    """DeepMon's static-frame test: has any block's colour histogram changed since the last kept frame?

    Args:
        grid: the frame is cut into ``grid x grid`` blocks.
        bins: histogram bins per colour channel.
        threshold: chi-square distance above which a block counts as changed.
    """

    def __init__(self, grid: int = 8, bins: int = 4, threshold: float = 0.08) -> None:
        if grid < 1 or bins < 2 or threshold <= 0:
            raise ValueError("grid >= 1, bins >= 2 and threshold > 0 are required")
        self.grid, self.bins, self.threshold = grid, bins, threshold
        self._last: np.ndarray | None = None

    def changed(self, image: np.ndarray) -> bool:
        """True (and ``image`` becomes the reference) when some block changed; False to skip it."""
        hist = block_histograms(image, self.grid, self.bins)
        if self._last is not None and chi_square(hist, self._last).max() <= self.threshold:
            return False
        self._last = hist
        return True
