"""Image arrays in and out: resizing, and class-per-folder data sets.

Everything here works on ``uint8`` RGB arrays of shape ``(N, H, W, 3)``; the
networks scale to [0, 1] themselves, so callers never need to remember how.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
#: Sub-folders that mark a data set already split (the traffic world writes these).
SPLITS = ("train", "val", "calibration", "test")

_log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A data folder that cannot be used for training or evaluation."""


@dataclass
class ImageSet:
    """Images with integer labels and the class names they index.

    ``targets``, when set, are per-image probability vectors over ``classes``
    (a teacher's softmax, :func:`mxn.training.teacher_labels`): training learns
    them instead of the one-hot labels; ``labels`` stay their top-1.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    targets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> ImageSet:
        targets = None if self.targets is None else self.targets[index]
        return ImageSet(self.images[index], self.labels[index], self.classes, targets)

    @property
    def training_targets(self) -> np.ndarray:
        """What training fits: the target vectors where set, else the integer labels."""
        return self.labels if self.targets is None else self.targets


def resize_batch(images: np.ndarray | list[np.ndarray], size: int) -> np.ndarray:
    """Resize every image to ``size x size`` (area interpolation when shrinking)."""
    out = np.empty((len(images), size, size, 3), np.uint8)
    for k, img in enumerate(images):
        img = np.asarray(img)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.shape[:2] != (size, size):
            shrink = img.shape[0] > size or img.shape[1] > size
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        out[k] = img
    return out


def read_image(path: str | Path) -> np.ndarray | None:
    """An RGB ``uint8`` image, or ``None`` when the file cannot be decoded."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def first_few(items: Sequence[str], most: int = 3) -> str:
    """Up to ``most`` items joined with commas, and how many more: a message names a few, counts the rest."""
    shown = ", ".join(items[:most])
    return f"{shown}, and {len(items) - most} more" if len(items) > most else shown


def list_classes(root: str | Path) -> list[str]:
    """The class folders of a class-per-folder directory, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such directory")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DatasetError(f"{root}: expected one sub-folder per class, found {len(classes)}")
    return classes


def load_image_folder(
    root: str | Path, size: int, classes: list[str] | None = None, log: Callable[[str], None] | None = None
) -> ImageSet:
    """Load a class-per-folder directory (``root/<class>/<image>``), resized to ``size``.

    Files that cannot be decoded are skipped and counted in one line passed
    to ``log`` (default: a warning of this module's logger, which prints
    the bare line when logging is not set up; never a Python warning with a
    source line); a folder with no readable image at all is an error. Pass
    ``classes`` to keep label numbers aligned with another split.
    """
    root = Path(root)
    classes = classes or list_classes(root)
    images, labels, bad = [], [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            img = read_image(path)
            if img is None:
                bad.append(f"{name}/{path.name}")
                continue
            images.append(img)
            labels.append(label)
    if bad:
        (log or _log.warning)(f"{root}: skipped {len(bad)} unreadable image(s) ({first_few(bad)})")
    if not images:
        raise DatasetError(f"{root}: no readable images ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    return ImageSet(resize_batch(images, size), np.asarray(labels, np.int64), list(classes))


def load_dataset(
    root: str | Path, size: int, log: Callable[[str], None] | None = None
) -> dict[str, ImageSet]:
    """A data set as named splits.

    If ``root`` has ``train/`` (and optionally ``val/``, ``calibration/``,
    ``test/``) sub-folders, each is loaded with the train split's classes;
    otherwise ``root`` itself is the single split ``"all"``. Skipped
    unreadable images are told to ``log`` (see :func:`load_image_folder`).
    """
    root = Path(root)
    if (root / "train").is_dir():
        classes = list_classes(root / "train")
        return {
            split: load_image_folder(root / split, size, classes, log)
            for split in SPLITS
            if (root / split).is_dir()
        }
    return {"all": load_image_folder(root, size, log=log)}


def merge_datasets(datasets: Sequence[dict[str, ImageSet]]) -> dict[str, ImageSet]:
    """Several data sets (from :func:`load_dataset`) as one: each split concatenated, classes united.

    The classes are the sorted union of every set's class names, and each
    set's labels are renumbered into them, so a class one set lacks is
    simply absent from its images. All images must have the same size.
    """
    if not datasets:
        raise DatasetError("no data sets to merge")
    if len(datasets) == 1:
        return dict(datasets[0])
    classes = sorted({c for splits in datasets for split in splits.values() for c in split.classes})
    out: dict[str, ImageSet] = {}
    for name in dict.fromkeys(k for splits in datasets for k in splits):
        parts = [splits[name] for splits in datasets if name in splits]
        shapes = {p.images.shape[1:] for p in parts}
        if len(shapes) > 1:
            raise DatasetError(f"the {name!r} splits have images of different sizes: {sorted(shapes)}")
        labels = [np.array([classes.index(p.classes[y]) for y in p.labels], np.int64) for p in parts]
        out[name] = ImageSet(np.concatenate([p.images for p in parts]), np.concatenate(labels), classes)
    return out


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int = 0) -> list[np.ndarray]:
    """Split item indices into parts of the given fractions, class by class."""
    if not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        cuts = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, cuts), strict=True):
            part.extend(chunk.tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4): (N, M).

    Boxes are (x1, y1, x2, y2) with x2 > x1 and y2 > y1.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def square_crop(
    image: np.ndarray, box: tuple[float, float, float, float], size: int, expand: float = 0.1
) -> np.ndarray:
    """Cut a square around ``box`` (x1, y1, x2, y2), grown by ``expand``, and resize it.

    The square is centred on the box and as wide as its longer side, so the
    object keeps its aspect ratio and some context; parts outside the image
    repeat the border pixels. This is the one crop used for training crops
    and for ingest, so a model sees at run time what it saw in training.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + expand)
    side = max(side, 2.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    n = round(side)
    h, w = image.shape[:2]
    pad = max(0, -left, -top, left + n - w, top + n - h)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        left, top = left + pad, top + pad
    patch = image[top : top + n, left : left + n]
    interp = cv2.INTER_AREA if n > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)
