"""A training set cut from an index: Focus's specialisation data.

Focus trains its cheap CNN on the very objects ingest finds in the user's own
stream, labelled by the ground-truth CNN. The index keeps one crop per cluster
(its representative, at ``IngestConfig.crop_size``); this module writes those
crops, each object once, into the class-per-folder layout ``mxn train`` reads,
labelled by the GT-CNN's top-1::

    OUT/train/<label>/<video id>_<object id>.png
    OUT/val/...  OUT/calibration/...  OUT/test/...
    OUT/manifest.json      counts, the GT-CNN, the index, settings

Students trained on these crops (``mxn train OUT --init query.mxn``) learn the
queries' own candidates: fragments, merged vehicles, occlusion, the frame's
edge. On a downtown test index the query MXN trained on world blobs alone
agreed with the GT-CNN on 78% (exit 0) to 90% (exit 4) of the candidates,
against 87-95% on its own blob test split: the world's blob crops leave out
the occluded, truncated and poorly overlapping blobs that ingest keeps.
Trained on these crops as well, it agreed on 81% to 92% (docs/MODELS.md).

Splits are cut by blocks of ``block_seconds`` of video, not crop by crop, so
the near-identical crops of one object in consecutive frames do not end up
in both the training and the test split.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mxn.images import SPLITS, resize_batch
from mxn.modelfile import MXNModel, model_sha
from mxn.storage.crop_codec import crop_png, decode_crop
from mxn.storage.store import Store

from .config import EXPORT_BLOCK_SECONDS, EXPORT_EVERY, EXPORT_SEED, IngestConfig

FORMAT = "mxn-index-crops"
#: Shares of the time blocks that go to train, val, calibration and test.
SPLIT_FRACTIONS = (0.8, 0.1, 0.05, 0.05)


class TrainingSetError(ValueError):
    """Nothing to cut (an empty index), bad settings, or an output folder already in use."""


@dataclass(frozen=True)
class IndexCrop:
    """One object's representative crop as the index keeps it."""

    object_id: int
    video_id: int
    time: float
    data: bytes  # as stored (mxn.storage.crop_codec)


def index_crops(store: Store, mode: str = "mxn", video_id: int | None = None) -> list[IndexCrop]:
    """Every representative crop of the index, each object once (it represents a cluster per label)."""
    seen: dict[int, IndexCrop] = {}
    for label in store.labels(mode=mode):
        for c in store.clusters(label, video_id, mode=mode):
            if c.representative_object_id not in seen:
                seen[c.representative_object_id] = IndexCrop(
                    c.representative_object_id, c.video_id, c.first_time, c.representative_crop
                )
    return [seen[k] for k in sorted(seen)]


def split_by_time(
    crops: list[IndexCrop], block_seconds: float, fractions: tuple[float, ...], seed: int
) -> np.ndarray:
    """Each crop's split index: whole blocks of ``block_seconds`` per video go to one split."""
    if block_seconds <= 0:
        raise TrainingSetError(f"block_seconds must be positive, got {block_seconds}")
    if len(fractions) != len(SPLITS) or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise TrainingSetError(f"fractions must be {len(SPLITS)} shares that sum to 1, got {fractions}")
    blocks = sorted({(c.video_id, int(c.time // block_seconds)) for c in crops})
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(SPLITS), size=len(blocks), p=np.asarray(fractions) / sum(fractions))
    of_block = dict(zip(blocks, chosen, strict=True))
    return np.array([of_block[(c.video_id, int(c.time // block_seconds))] for c in crops], np.int64)


def gt_labels(
    crops: list[IndexCrop], gt_model: MXNModel, batch_size: int = 64, progress: bool = False
) -> list[str]:
    """The GT-CNN's top-1 label of every crop (its last exit)."""
    runner, last = gt_model.runner(batch_size), gt_model.spec.num_exits - 1
    out: list[str] = []
    step = 1024
    for start in tqdm(range(0, len(crops), step), desc="GT-CNN labels", unit="chunk", disable=not progress):
        images = resize_batch(
            [decode_crop(c.data) for c in crops[start : start + step]], gt_model.spec.input_size
        )
        top = runner.all_exits(images, exits=[last]).output(last).argmax(axis=1)
        out += [gt_model.classes[int(k)] for k in top]
    return out


def export_training_set(
    store: Store,
    out: str | os.PathLike,
    gt_model: MXNModel,
    mode: str = IngestConfig.mode,
    video_id: int | None = None,
    every: int = EXPORT_EVERY,
    block_seconds: float = EXPORT_BLOCK_SECONDS,
    fractions: tuple[float, ...] = SPLIT_FRACTIONS,
    seed: int = EXPORT_SEED,
    progress: bool = False,
) -> dict[str, Any]:
    """Write the index's crops, labelled by ``gt_model``, as a training set in ``out``; its manifest.

    ``every`` keeps every N-th object (consecutive frames repeat each other).
    ``out`` must be empty or new: crops of two indexes are not mixed silently.
    """
    if every < 1:
        raise TrainingSetError(f"every must be at least 1, got {every}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TrainingSetError(f"{out} is not an empty folder; choose a new one")
    crops = index_crops(store, mode, video_id)[::every]
    if not crops:
        raise TrainingSetError(f"the index holds no {mode} clusters to cut crops from: ingest a video first")
    splits = split_by_time(crops, block_seconds, fractions, seed)
    labels = gt_labels(crops, gt_model, progress=progress)
    counts: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
    for crop, split, label in tqdm(
        zip(crops, splits, labels, strict=True), total=len(crops), desc="writing crops", unit="crop",
        disable=not progress,
    ):  # fmt: skip
        folder = out / SPLITS[split] / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{crop.video_id}_{crop.object_id}.png").write_bytes(crop_png(crop.data))
        counts[SPLITS[split]][label] += 1
    manifest = {
        "format": FORMAT,
        "source": "representative crops of an index, labelled by the ground-truth CNN",
        "classes": sorted(set(labels)),
        "counts": {name: dict(sorted(c.items())) for name, c in counts.items() if c},
        "crop_size": int(decode_crop(crops[0].data).shape[0]),
        "gt_model": {"sha256": model_sha(gt_model), "classes": list(gt_model.classes)},
        "index": {"mode": mode, "video_id": video_id, "videos": sorted({c.video_id for c in crops})},
        "config": {
            "every": every,
            "block_seconds": block_seconds,
            "fractions": list(fractions),
            "seed": seed,
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
