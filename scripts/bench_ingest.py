"""Focus vs MXN ingest, per camera preset (the dissertation's Tables 5.10 / 5.11), on CPU.

For every camera preset, side by side in one run:

1. **Clip.** A clip of the preset is rendered into a temporary folder.
2. **Floor.** :func:`mxn.ingest.pipeline.detect_objects` alone (decode + background
   subtraction) is timed over the clip: no ingest can go faster than that.
3. **Probe** (not timed as ingest). The objects are found again and cropped
   exactly as ingest crops them; the ground-truth CNN's top-1 on each crop is
   its reference label (Focus's gt-all) and the ingest MXN gives all 5 exits.
4. **Recall** (the issue's definition). A class's recall is the share of the
   frames that truly hold it (an object gt-labelled with it) in which some
   object is indexed under it; a configuration's recall is the minimum over
   the classes present. Object-level recall is reported beside it.
5. **Search** (NumPy only, on the probe). Focus: one exit with top-K; MXN: a
   set of >= 2 exits, each contributing top-k'. The estimated cost of a
   configuration is the model's seconds per object up to its deepest exit
   (timed on the probe's crops) times the objects, plus a unit cost per
   ``(object, label)`` indexing (from one calibration ingest) times
   #indexing. Each method gets its cheapest configuration with recall >= 0.99.
6. **Timed ingests**, each into a fresh SQLite database: the chosen Focus
   configuration, the chosen MXN configuration, and gt-all with the
   ground-truth CNN (the full run repeats them twice in alternating order and
   takes medians). Every index's recall is measured against the gt-all index
   (objects matched by frame and box) and checked against the probe.
7. **Memory.** One preset is rendered at two lengths and each is ingested in
   a child process (``mxn ingest``); the children's peak RSS (each child's
   own VmHWM) must not grow with the length.

Graphs are traced before the timed runs, so TensorFlow's tracing is never
timed. The machine may be shared: the script notes how much CPU other
processes took during each timed run. It always exits 0: it is a
measurement, and it prints which targets were met.

Usage::

    python scripts/bench_ingest.py --quick --json /tmp/bench_ingest_quick.json   # ~1 min
    python scripts/bench_ingest.py --json /tmp/bench_ingest_full.json             # ~12 min on 2 quiet cores
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads: its C++ start-up chatter

import faiss
import numpy as np
import tensorflow as tf
from harness import (
    CpuWatch,
    above_quiet,
    at_least,
    choose_preset,
    fmt,
    median,
    new_parser,
    print_header,
    ratio,
    targets_met,
    time_calls,
    verdict,
    write_result,
)
from traffic_setup import ClipSettings, add_clip_arguments, clip_overrides, load_models

from mxn.datasets.world.presets import PRESETS
from mxn.defaults import default_model_path
from mxn.flops import exit_macs
from mxn.images import resize_batch, square_crop
from mxn.ingest.aggregation import indexing_count, topk_mask
from mxn.ingest.config import IngestConfig
from mxn.ingest.distributed import DistributedIngest, dask_client
from mxn.ingest.pipeline import Detection, VideoIngest, detect_objects
from mxn.media.video import probe
from mxn.modelfile import MXNModel, load_model
from mxn.storage.store import Store

#: A configuration qualifies when its frame-level recall (min over classes) reaches this.
TARGET_RECALL = 0.99
#: Labels per exit the search tries (1..MAX_K; with 7 classes K=7 indexes every class).
MAX_K = 7
TARGET_SPEEDUP_VS_FOCUS = 1.3
TARGET_MODEL_RATIO_VS_GT = 20.0
TARGET_FLOOR_FRACTION = 0.4
TARGET_MEMORY_RATIO = 1.15
#: The dissertation's Table 5.11: MXN vs Focus ingest speed-up over 8 videos.
PAPER = {"speedup_vs_focus_range": [1.06, 1.41]}
MODES = ("focus", "mxn", "gt-all")
STAGES = ("decode_s", "extract_s", "model_s", "cluster_s", "store_s")


# -- settings -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings(ClipSettings):
    """Sizes of one benchmark run (the quick preset or the full one, plus command-line overrides)."""

    rounds: int  # timed ingests per mode, alternating the order; medians over them
    floor_repeats: int
    timing_objects: int  # crops the per-depth model cost is timed on
    timing_repeats: int
    memory_preset: str
    memory_seconds: tuple[float, float]
    workers_seconds: float  # the clip of the workers check (same preset as the memory check)
    workers_ranges: int  # ranges it is split into (each a whole number of chunks)


QUICK = Settings(
    quick=True, presets=tuple(PRESETS), seconds=6.0, size=(320, 180), fps=15.0, seed=0, rounds=1,
    floor_repeats=1, timing_objects=256, timing_repeats=3, warmup=15, chunk_frames=30,
    memory_preset="downtown", memory_seconds=(10.0, 60.0), workers_seconds=16.0, workers_ranges=4,
)  # fmt: skip
FULL = Settings(
    quick=False, presets=tuple(PRESETS), seconds=60.0, size=(640, 360), fps=30.0, seed=0, rounds=2,
    floor_repeats=2, timing_objects=2048, timing_repeats=5, warmup=45, chunk_frames=900,
    memory_preset="downtown", memory_seconds=(60.0, 600.0), workers_seconds=120.0, workers_ranges=4,
)  # fmt: skip


# -- memory ---------------------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0), so a peak can be read per run."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """This process's peak RSS since the last :func:`reset_peak_rss` (else since it started)."""
    try:
        found = re.search(r"VmHWM:\s+(\d+)\s+kB", Path("/proc/self/status").read_text())
    except OSError:
        found = None
    if found:
        return int(found.group(1)) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the probe ------------------------------------------------------------------------------------------


@dataclass
class Probe:
    """Every object of a clip, in detection order, with its reference label and the 5 exits' outputs."""

    frames: np.ndarray  # (N,) frame index
    boxes: np.ndarray  # (N, 4)
    gt: np.ndarray  # (N,) the ground-truth CNN's top-1, as an index into the ingest MXN's classes
    outputs: list[np.ndarray]  # per exit of the ingest MXN, (N, C) probabilities
    crops: dict[int, np.ndarray]  # per input size (the ingest MXN's, the GT-CNN's): (N, S, S, 3), for timing
    processed_frames: int

    def keys(self) -> list[tuple[int, tuple[int, ...]]]:
        """(frame, box) per object: how objects are matched across indexes."""
        return [(int(f), tuple(int(v) for v in b)) for f, b in zip(self.frames, self.boxes, strict=True)]


def detected(path: Path, config: IngestConfig, stats: dict[str, Any]) -> Iterator[Detection]:
    """The frames with boxes, exactly as ingest finds them (``stats`` counts every processed frame)."""
    for event in detect_objects(path, probe(path), config, stats=stats):
        if isinstance(event, Detection) and len(event.boxes):
            yield event


def crop_objects(
    path: Path, config: IngestConfig, sizes: set[int], stats: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """Frames, boxes and crops (per input size) of every object, cropped as ``VideoIngest`` crops.

    As ingest does, each object is cut once at ``config.crop_side`` and resized to each model's input.
    """
    frames, boxes, kept = [], [], []
    side = config.crop_side(max(sizes))
    for event in detected(path, config, stats):
        for box in event.boxes:
            frames.append(event.frame.index)
            boxes.append(box)
            kept.append(square_crop(event.frame.image, box, side, expand=config.crop_expand))
    stacked = {s: resize_batch(kept, s) for s in sizes}
    return np.asarray(frames, np.int64), np.asarray(boxes, np.int64).reshape(-1, 4), stacked


def outputs_in_slices(
    model: MXNModel, crops: np.ndarray, exits: tuple[int, ...], batch: int
) -> list[np.ndarray]:
    """``all_exits`` in slices, so the float32 copy of the crops never holds the whole clip."""
    runner, parts = model.runner(batch_size=batch), []
    for start in range(0, max(len(crops), 1), 2048):
        parts.append(runner.all_exits(crops[start : start + 2048], exits=exits).outputs)
    return [np.concatenate([p[k] for p in parts]) for k in range(len(exits))]


def run_probe(path: Path, config: IngestConfig, ingest_model: MXNModel, gt_model: MXNModel) -> Probe:
    """The probe pass (step 3); untimed."""
    size, gt_size = ingest_model.spec.input_size, gt_model.spec.input_size
    stats: dict[str, Any] = {}
    frames, boxes, crops = crop_objects(path, config, {size, gt_size}, stats)
    gt_last = gt_model.spec.num_exits - 1
    gt_top1 = outputs_in_slices(gt_model, crops[gt_size], (gt_last,), config.batch_size)[0].argmax(axis=1)
    missing = sorted(set(gt_model.classes) - set(ingest_model.classes))
    if missing:
        raise RuntimeError(f"the ground-truth CNN has classes the ingest MXN lacks: {missing}")
    gt = np.asarray([ingest_model.classes.index(c) for c in gt_model.classes], np.int64)[gt_top1]
    exits = tuple(range(ingest_model.spec.num_exits))
    outputs = outputs_in_slices(ingest_model, crops[size], exits, config.batch_size)
    return Probe(frames, boxes, gt, outputs, crops, int(stats["frames"]))


# -- recall ---------------------------------------------------------------------------------------------


def frame_recall(frames: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> tuple[float, dict[int, float]]:
    """The issue's recall: per class, the share of its true frames indexed under it; and the minimum.

    A frame truly holds class c when one of its objects is gt-labelled c; it
    is indexed under c when one of its objects has c in its label union.
    """
    n, classes = mask.shape
    if n == 0:
        return 1.0, {}
    _, inverse = np.unique(frames, return_inverse=True)
    truth = np.zeros((inverse.max() + 1, classes), bool)
    truth[inverse, gt] = True
    indexed = np.zeros_like(truth)
    for c in range(classes):
        indexed[inverse[mask[:, c]], c] = True
    present = np.flatnonzero(truth.any(axis=0))
    per_class = {int(c): float((indexed[:, c] & truth[:, c]).sum() / truth[:, c].sum()) for c in present}
    return (min(per_class.values()) if per_class else 1.0), per_class


def object_recall(gt: np.ndarray, mask: np.ndarray) -> float:
    """Share of objects whose reference label is in their label union."""
    return float(mask[np.arange(len(gt)), gt].mean()) if len(gt) else 1.0


# -- costs ----------------------------------------------------------------------------------------------


def timing_crops(crops: np.ndarray, count: int) -> np.ndarray:
    """``count`` crops spread over the clip (tiled when the clip has fewer), so timing never starves."""
    if len(crops) == 0:
        raise ValueError("no objects to time the model on")
    index = np.linspace(0, len(crops) - 1, min(count, len(crops))).round().astype(int)
    return np.resize(crops[index], (count, *crops.shape[1:]))


def model_costs(
    ingest_model: MXNModel, gt_model: MXNModel, crops: dict[int, np.ndarray], settings: Settings, batch: int
) -> dict[str, Any]:
    """Seconds per object of the ingest MXN up to each depth d (exits 0..d), and of the GT-CNN.

    A deeper prefix includes every shallower one, so the per-depth costs used
    by the search are made non-decreasing (a running maximum); the raw
    medians are kept beside them.
    """
    images = timing_crops(crops[ingest_model.spec.input_size], settings.timing_objects)
    gt_images = timing_crops(crops[gt_model.spec.input_size], settings.timing_objects)
    runner, gt_runner = ingest_model.runner(batch_size=batch), gt_model.runner(batch_size=batch)
    depths = ingest_model.spec.num_exits
    gt_last = gt_model.spec.num_exits - 1
    calls: dict[str, Callable[[], Any]] = {
        str(d): (lambda d=d: runner.all_exits(images, exits=tuple(range(d + 1)), features_exit=d))
        for d in range(depths)
    }
    calls["gt"] = lambda: gt_runner.all_exits(gt_images, exits=(gt_last,), features_exit=gt_last)
    seconds = time_calls(calls, settings.timing_repeats)
    raw = [seconds[str(d)] / len(images) for d in range(depths)]
    return {
        "timed_objects": len(images),
        "repeats": settings.timing_repeats,
        "model_s_per_object_raw": raw,
        "model_s_per_object": list(np.maximum.accumulate(raw)),
        "gt_model_s_per_object": seconds["gt"] / len(images),
    }


# -- the configuration search ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """One configuration as the probe predicts it."""

    method: str  # "focus" | "mxn"
    exits: tuple[int, ...]
    topk: int
    recall: float
    object_recall: float
    indexing: int
    estimated_s: float

    def order(self) -> tuple:
        """Cheapest first; ties go to fewer index entries, fewer exits, smaller k, lower exits."""
        return (self.estimated_s, self.indexing, len(self.exits), self.topk, self.exits)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exits": list(self.exits),
            "topk": self.topk,
            "predicted_recall": self.recall,
            "predicted_object_recall": self.object_recall,
            "predicted_indexing": self.indexing,
            "estimated_s": self.estimated_s,
        }


def evaluate(
    probe_: Probe,
    masks: dict[tuple[int, int], np.ndarray],
    method: str,
    exits: tuple[int, ...],
    k: int,
    cost: Callable[[int, int], float],
) -> Choice:
    """The predicted recall, #indexing and estimated seconds of one configuration."""
    mask = np.zeros_like(masks[(exits[0], k)])
    for e in exits:
        mask |= masks[(e, k)]
    recall, _ = frame_recall(probe_.frames, probe_.gt, mask)
    indexing = indexing_count(mask)
    estimate = cost(max(exits), indexing)
    return Choice(method, exits, k, recall, object_recall(probe_.gt, mask), indexing, estimate)


def candidates(num_exits: int) -> Iterator[tuple[str, tuple[int, ...], int]]:
    """Focus: one exit, top-K; MXN: every set of >= 2 exits, top-k'; K, k' in 1..MAX_K."""
    for k in range(1, MAX_K + 1):
        for e in range(num_exits):
            yield "focus", (e,), k
        for size in range(2, num_exits + 1):
            for exits in itertools.combinations(range(num_exits), size):
                yield "mxn", exits, k


def class_counts(probe_: Probe, classes: Sequence[str]) -> dict[str, dict[str, int]]:
    """Objects and frames per reference class: the rare classes decide how large K must be."""
    out = {}
    for c in np.unique(probe_.gt):
        chosen = probe_.gt == c
        out[classes[c]] = {"objects": int(chosen.sum()), "frames": len(np.unique(probe_.frames[chosen]))}
    return out


def shortfall(
    probe_: Probe, masks: dict[tuple[int, int], np.ndarray], choice: Choice, classes: Sequence[str]
) -> dict[str, Any] | None:
    """Why one label fewer per exit would not do for the chosen exits: the classes it leaves short."""
    k = choice.topk - 1
    if k < 1:
        return None
    mask = np.zeros_like(masks[(choice.exits[0], k)])
    for e in choice.exits:
        mask |= masks[(e, k)]
    recall, per_class = frame_recall(probe_.frames, probe_.gt, mask)
    frames = class_counts(probe_, classes)
    short = {
        classes[c]: {
            "recall": r,
            "true_frames": frames[classes[c]]["frames"],
            "missed_frames": round(frames[classes[c]]["frames"] * (1 - r)),
        }
        for c, r in per_class.items()
        if r < TARGET_RECALL
    }
    return {
        "topk": k,
        "recall": recall,
        "object_recall": object_recall(probe_.gt, mask),
        "classes_short": short,
    }


def search(
    probe_: Probe, per_object: Sequence[float], unit_indexing_s: float, classes: Sequence[str]
) -> dict[str, Any]:
    """The cheapest qualifying configuration of each method (step 5)."""
    num_classes = probe_.outputs[0].shape[1]
    ks = range(1, min(MAX_K, num_classes) + 1)
    masks = {(e, k): topk_mask(out, k) for e, out in enumerate(probe_.outputs) for k in ks}
    n = len(probe_.gt)

    def cost(depth: int, indexing: int) -> float:
        return per_object[depth] * n + unit_indexing_s * indexing

    best: dict[str, Choice] = {}
    every: list[Choice] = []
    for method, exits, k in candidates(len(probe_.outputs)):
        if k > num_classes:
            continue
        choice = evaluate(probe_, masks, method, exits, k, cost)
        every.append(choice)
        if choice.recall >= TARGET_RECALL and (method not in best or choice.order() < best[method].order()):
            best[method] = choice
    focus_by_exit = {}
    for e in range(len(probe_.outputs)):
        ok = [c for c in every if c.method == "focus" and c.exits == (e,) and c.recall >= TARGET_RECALL]
        focus_by_exit[str(e)] = min(ok, key=Choice.order).to_dict() if ok else None
    runners_up = sorted(
        (c for c in every if c.method == "mxn" and c.recall >= TARGET_RECALL), key=Choice.order
    )
    return {
        "focus": best["focus"],
        "mxn": best["mxn"],
        "focus_cheapest_per_exit": focus_by_exit,
        "mxn_cheapest_five": [c.to_dict() for c in runners_up[:5]],
        "configurations_tried": len(every),
        "class_counts": class_counts(probe_, classes),
        "focus_one_label_fewer": shortfall(probe_, masks, best["focus"], classes),
        "mxn_one_label_fewer": shortfall(probe_, masks, best["mxn"], classes),
    }


# -- ingest runs ----------------------------------------------------------------------------------------


def warm_graphs(model: MXNModel, config: IngestConfig, crops: dict[int, np.ndarray]) -> None:
    """Trace the graph a run will use (and its partial batch) so no timed run pays for tracing."""
    resolved = config.resolve(model.spec.num_exits)
    runner = model.runner(batch_size=resolved.batch_size)
    mine = crops[model.spec.input_size]
    images = np.resize(mine, (resolved.batch_size + 1, *mine.shape[1:]))
    runner.all_exits(images, exits=resolved.exits, features_exit=resolved.cluster_exit)


def ingest_once(video: Path, db: Path, model: MXNModel, config: IngestConfig) -> dict[str, Any]:
    """One ingest into a fresh SQLite database: its stats, wall time, peak RSS and the CPU others took."""
    db.unlink(missing_ok=True)
    with Store(f"sqlite:///{db}") as store:
        runner = VideoIngest(store, model, config, progress=False)
        has_reset = reset_peak_rss()
        watch, start = CpuWatch.start(), time.perf_counter()
        result = runner.ingest(video, force=True)
        wall = time.perf_counter() - start
        peak = peak_rss_mb()
    if result.status != "done":
        raise RuntimeError(f"ingest of {video.name} ended {result.status}: {result.error}")
    keep = ("frames", "frames_skipped", "objects", "indexing", "clusters", "seconds", "frames_per_s", *STAGES)
    run = {k: result.stats[k] for k in keep}
    run |= {"wall_s": wall, "peak_rss_mb": peak, "peak_is_per_run": has_reset}
    run["other_processes_cpu_share"] = watch.others_share()
    return run


def index_masks(db: Path, mode: str, keys: list[tuple], classes: Sequence[str]) -> np.ndarray:
    """Each probe object's label union as the finished index holds it (objects matched by frame and box)."""
    with Store(f"sqlite:///{db}") as store:
        stored = store.objects(mode=mode)
    position = {key: i for i, key in enumerate(keys)}
    found = {(o.frame, tuple(int(v) for v in o.box)): o.labels for o in stored}
    if set(found) != set(position):
        missing, extra = len(set(position) - set(found)), len(set(found) - set(position))
        raise RuntimeError(
            f"the {mode} index holds other objects than the probe ({missing} missing, {extra} extra)"
        )
    column = {name: c for c, name in enumerate(classes)}
    mask = np.zeros((len(keys), len(classes)), bool)
    for key, labels in found.items():
        mask[position[key], [column[name] for name in labels]] = True
    return mask


def measure_recall(
    dbs: dict[str, Path], probe_: Probe, classes: Sequence[str], predicted: dict[str, Choice]
) -> dict[str, Any]:
    """Recall of the real Focus and MXN indexes against the real gt-all index, checked against the probe."""
    keys = probe_.keys()
    gt_mask = index_masks(dbs["gt-all"], "gt-all", keys, classes)
    if not (gt_mask.sum(axis=1) == 1).all():
        raise RuntimeError("the gt-all index must hold exactly one label per object")
    gt = gt_mask.argmax(axis=1)
    out: dict[str, Any] = {"gt_label_mismatches_vs_probe": int((gt != probe_.gt).sum())}
    for method in ("focus", "mxn"):
        mask = index_masks(dbs[method], method, keys, classes)
        recall, per_class = frame_recall(probe_.frames, gt, mask)
        out[method] = {
            "recall": recall,
            "per_class_recall": {classes[c]: r for c, r in per_class.items()},
            "object_recall": object_recall(gt, mask),
            "indexing": indexing_count(mask),
            "matches_probe": abs(recall - predicted[method].recall) < 1e-12,
        }
    return out


def timed_rounds(
    video: Path, tmp: Path, models: dict[str, MXNModel], configs: dict[str, IngestConfig], rounds: int
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Path]]:
    """Every mode ``rounds`` times, alternating the order (focus, mxn, gt-all; then reversed)."""
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    dbs: dict[str, Path] = {}
    for r in range(rounds):
        for mode in MODES if r % 2 == 0 else MODES[::-1]:
            dbs[mode] = tmp / f"{video.stem}-{mode}-{r}.db"
            model = models["gt" if mode == "gt-all" else "ingest"]
            runs[mode].append(ingest_once(video, dbs[mode], model, configs[mode]))
    return runs, dbs


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("seconds", "wall_s", "frames_per_s", *STAGES)
    return {k: median([r[k] for r in runs]) for k in keys}


# -- one preset -----------------------------------------------------------------------------------------


def time_floor(video: Path, config: IngestConfig, repeats: int) -> dict[str, Any]:
    """Decode + background subtraction alone, ``repeats`` times (step 2)."""
    seconds, shares, frames = [], [], 0
    for _ in range(repeats):
        stats: dict[str, Any] = {}
        watch, start = CpuWatch.start(), time.perf_counter()
        for _ in detect_objects(video, probe(video), config, stats=stats):
            pass
        seconds.append(time.perf_counter() - start)
        shares.append(watch.others_share())
        frames = int(stats["frames"])
    best = median(seconds)
    return {
        "seconds": seconds,
        "frames": frames,
        "frames_per_s": frames / best,
        "other_processes_cpu_share": shares,
    }


def calibrate_indexing(
    video: Path, tmp: Path, model: MXNModel, settings: Settings, crops: dict[int, np.ndarray]
) -> dict:
    """Seconds per (object, label) indexing from one default MXN ingest: (cluster_s + store_s) / indexing."""
    config = settings.ingest_config(mode="mxn")
    warm_graphs(model, config, crops)
    run = ingest_once(video, tmp / f"{video.stem}-calibration.db", model, config)
    unit = (run["cluster_s"] + run["store_s"]) / max(run["indexing"], 1)
    return {"config": config.resolve(model.spec.num_exits).index_key(), "run": run, "indexing_unit_s": unit}


def run_configs(settings: Settings, focus: Choice, mxn: Choice) -> dict[str, IngestConfig]:
    return {
        "focus": settings.ingest_config(mode="focus", exits=focus.exits, topk=focus.topk),
        "mxn": settings.ingest_config(mode="mxn", exits=mxn.exits, topk=mxn.topk),
        "gt-all": settings.ingest_config(mode="gt-all"),
    }


def summarise(
    name: str, frames: int, floor: dict, chosen: dict, runs: dict, measured: dict
) -> dict[str, Any]:
    """The per-preset JSON keys the docs cite, from the timed runs' medians."""
    med = {m: medians(runs[m]) for m in MODES}
    focus, mxn = chosen["focus"], chosen["mxn"]
    return {
        "preset": name,
        "frames": frames,
        "objects": runs["mxn"][0]["objects"],
        "recall": measured["mxn"]["recall"],
        "recall_focus": measured["focus"]["recall"],
        "object_recall_mxn": measured["mxn"]["object_recall"],
        "object_recall_focus": measured["focus"]["object_recall"],
        "recall_matches_probe": measured["mxn"]["matches_probe"] and measured["focus"]["matches_probe"],
        "indexing_mxn": runs["mxn"][0]["indexing"],
        "indexing_focus": runs["focus"][0]["indexing"],
        "indexing_gt_all": runs["gt-all"][0]["indexing"],
        "clusters": {m: runs[m][0]["clusters"] for m in MODES},
        "focus_config": focus.to_dict(),
        "mxn_config": mxn.to_dict(),
        "aggregation_lowered_k": mxn.topk < focus.topk,
        "speedup_vs_focus": ratio(med["focus"]["seconds"], med["mxn"]["seconds"]),
        "model_time_ratio_vs_gt_all": ratio(med["gt-all"]["model_s"], med["mxn"]["model_s"]),
        "speedup_vs_gt_all": ratio(med["gt-all"]["seconds"], med["mxn"]["seconds"]),
        "floor_fraction": ratio(med["mxn"]["frames_per_s"], floor["frames_per_s"]),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs["mxn"]),
        "peak_rss_mb_per_mode": {m: max(r["peak_rss_mb"] for r in runs[m]) for m in MODES},
        "floor": floor,
        "median": med,
        "runs": runs,
        "measured_recall": measured,
    }


def bench_preset(name: str, settings: Settings, models: dict[str, MXNModel], tmp: Path) -> dict[str, Any]:
    """Steps 1-6 for one camera preset."""
    say = lambda text: print(f"  [{name}] {text}", flush=True)  # noqa: E731
    clip = settings.render(tmp / f"{name}.mp4", name)
    config = settings.ingest_config()
    floor = time_floor(clip.video, config, settings.floor_repeats)
    say(f"{clip.frames} frames rendered; floor {floor['frames_per_s']:.0f} frames/s; probing ...")
    probe_ = run_probe(clip.video, config, models["ingest"], models["gt"])
    if len(probe_.gt) == 0:
        raise RuntimeError(f"{name}: no objects found; lengthen the clip (--seconds)")
    costs = model_costs(models["ingest"], models["gt"], probe_.crops, settings, config.batch_size)
    calibration = calibrate_indexing(clip.video, tmp, models["ingest"], settings, probe_.crops)
    classes = models["ingest"].classes
    found = search(probe_, costs["model_s_per_object"], calibration["indexing_unit_s"], classes)
    chosen = {"focus": found["focus"], "mxn": found["mxn"]}
    say(
        f"{len(probe_.gt)} objects; focus exit {chosen['focus'].exits[0]} K={chosen['focus'].topk}, "
        f"mxn exits {list(chosen['mxn'].exits)} k'={chosen['mxn'].topk}; timed ingests ..."
    )
    configs = run_configs(settings, chosen["focus"], chosen["mxn"])
    for mode, cfg in configs.items():
        warm_graphs(models["gt" if mode == "gt-all" else "ingest"], cfg, probe_.crops)
    probe_.crops = {}  # the timed runs' peak RSS should not carry the probe's crops
    runs, dbs = timed_rounds(clip.video, tmp, models, configs, settings.rounds)
    measured = measure_recall(dbs, probe_, classes, chosen)
    result = summarise(name, probe_.processed_frames, floor, chosen, runs, measured)
    result["search"] = {k: (v.to_dict() if isinstance(v, Choice) else v) for k, v in found.items()}
    result["cost_model"] = {
        **costs,
        "indexing_unit_s": calibration["indexing_unit_s"],
        "calibration": calibration,
    }
    result["configs"] = {
        m: c.resolve(models["gt" if m == "gt-all" else "ingest"].spec.num_exits).index_key()
        for m, c in configs.items()
    }
    result["probe_objects"] = len(probe_.gt)
    for path in (clip.video, clip.truth, *tmp.glob(f"{name}-*.db*")):
        path.unlink(missing_ok=True)
    return result


# -- memory flat in video length ------------------------------------------------------------------------


#: The child: ``mxn ingest`` that writes its own /proc status (with VmHWM) to $BENCH_STATUS at exit.
#: Not ``python -m mxn.cli``: run as __main__, that module would not see the ingest command.
CHILD = """
import atexit, os, sys
from pathlib import Path
atexit.register(lambda: Path(os.environ["BENCH_STATUS"]).write_text(Path("/proc/self/status").read_text()))
from mxn.cli import main
sys.exit(main())
"""


def child_ingest(
    video: Path, db: Path, settings: Settings, exits: Sequence[int], topk: int
) -> dict[str, Any]:
    """``mxn ingest`` in a child process: its own peak RSS, wall time and stats.

    The peak is the child's VmHWM read by the child at exit. ``wait4``'s
    ``ru_maxrss`` is kept beside it but is no measure of the child: Linux
    carries the high-water mark of the address space it had before ``exec``
    (the parent's, copied by fork or shared by vfork), so it reports at least
    the parent's RSS.
    """
    stats_json, status_file, log = db.with_suffix(".json"), db.with_suffix(".status"), db.with_suffix(".log")
    argv = [sys.executable, "-c", CHILD, "ingest", str(video), "--db", f"sqlite:///{db}", "--mode", "mxn"]
    argv += ["--exits", ",".join(map(str, exits)), "--topk", str(topk), "--warmup", str(settings.warmup)]
    argv += ["--chunk-frames", str(settings.chunk_frames), "--quiet", "--json", str(stats_json)]
    env = {**os.environ, "BENCH_STATUS": str(status_file)}
    start = time.perf_counter()
    with open(log, "w") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=db.parent)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"child ingest failed ({child.returncode}):\n{log.read_text()[-2000:]}")
    stats = json.loads(stats_json.read_text())["videos"][0]["stats"]
    peak = re.search(r"VmHWM:\s+(\d+)\s+kB", status_file.read_text())
    run = {k: stats[k] for k in ("frames", "objects", "clusters", "seconds")}
    run["peak_rss_mb"] = int(peak.group(1)) / 1024 if peak else usage.ru_maxrss / 1024
    return run | {"wait4_ru_maxrss_mb": usage.ru_maxrss / 1024, "wall_s": wall}


def bench_memory(settings: Settings, tmp: Path, mxn: dict[str, Any] | None) -> dict[str, Any]:
    """Peak RSS of child ingests of the same preset at two lengths (step 8)."""
    exits, topk = (mxn["exits"], mxn["topk"]) if mxn else ((0, 1, 2, 3, 4), 2)
    out: dict[str, Any] = {"preset": settings.memory_preset, "exits": list(exits), "topk": topk, "runs": []}
    for seconds in settings.memory_seconds:
        name = f"memory-{round(seconds)}s"
        clip = settings.render(tmp / f"{name}.mp4", settings.memory_preset, seconds)
        run = child_ingest(clip.video, tmp / f"{name}.db", settings, exits, topk)
        run["clip_seconds"] = seconds
        out["runs"].append(run)
        print(
            f"  [memory] {seconds:.0f} s clip: {run['frames']} frames, {run['objects']} objects, "
            f"peak RSS {run['peak_rss_mb']:.0f} MB ({run['wall_s']:.0f} s)",
            flush=True,
        )
        clip.video.unlink()
    short, long = out["runs"]
    out["peak_rss_mb"] = [short["peak_rss_mb"], long["peak_rss_mb"]]
    out["ratio"] = long["peak_rss_mb"] / short["peak_rss_mb"]
    return out


def bench_workers(settings: Settings, tmp: Path, mxn: dict[str, Any] | None) -> dict[str, Any]:
    """Throughput of one clip ingested in one process, then on local Dask clusters of 1 and 2 workers.

    The clip is split into ``workers_ranges`` ranges, the same in every run,
    so all three build the same index. Each run writes a fresh SQLite file
    (the two workers' writers take turns on it). The workers load the model
    and trace its graphs before the clock starts (``DistributedIngest`` does
    this); cluster start-up is not timed.
    """
    exits, topk = (tuple(mxn["exits"]), mxn["topk"]) if mxn else (None, 2)
    clip = settings.render(tmp / "workers.mp4", settings.memory_preset, settings.workers_seconds)
    frames = probe(clip.video).frame_count
    chunks = -(-frames // settings.chunk_frames)
    range_frames = settings.chunk_frames * -(-chunks // settings.workers_ranges)
    config = settings.ingest_config(mode="mxn", exits=exits, topk=topk, range_frames=range_frames)
    model_path = default_model_path("ingest")
    out: dict[str, Any] = {"preset": settings.memory_preset, "frames": frames, "range_frames": range_frames}
    runs: dict[str, dict[str, Any]] = {}
    store = Store(f"sqlite:///{tmp / 'workers-0.db'}")
    single = VideoIngest(store, load_model(model_path), config, progress=False)
    size = single.model.spec.input_size
    warm_graphs(single.model, config, {size: np.zeros((4, size, size, 3), np.uint8)})
    watch, start = CpuWatch.start(), time.perf_counter()
    result = single.ingest(clip.video)
    runs["process"] = {
        "wall_s": time.perf_counter() - start,
        "other_processes_cpu_share": watch.others_share(),
    }
    runs["process"] |= {"objects": result.stats["objects"], "ranges": result.stats["ranges"]}
    store.close()
    for workers in (1, 2):
        url = f"sqlite:///{tmp / f'workers-{workers}.db'}"
        with (
            dask_client(workers=workers) as client,
            DistributedIngest(url, model_path, config, client, progress=False) as runner,
        ):
            start = time.perf_counter()
            [result] = runner.ingest([clip.video])
            wall = time.perf_counter() - start
        if result.status != "done":
            raise RuntimeError(f"distributed ingest with {workers} workers failed: {result.error}")
        # the workers are other processes, so the others' CPU share would count them: not reported
        stats = result.stats
        runs[f"workers_{workers}"] = {"wall_s": wall, "objects": stats["objects"], "ranges": stats["ranges"]}
    for run in runs.values():
        run["frames_per_s"] = frames / run["wall_s"]
    out["runs"] = runs
    out["same_objects"] = len({run["objects"] for run in runs.values()}) == 1
    out["speedup_2_vs_1_workers"] = runs["workers_1"]["wall_s"] / runs["workers_2"]["wall_s"]
    out["speedup_2_workers_vs_process"] = runs["process"]["wall_s"] / runs["workers_2"]["wall_s"]
    clip.video.unlink()
    return out


def print_workers(workers: dict[str, Any]) -> None:
    print(
        f"\nworkers ({workers['preset']}, {workers['frames']} frames in ranges of {workers['range_frames']}):"
    )
    for name, run in workers["runs"].items():
        print(
            f"  {name:10s} {run['wall_s']:6.1f} s  {run['frames_per_s']:6.1f} frames/s  "
            f"{run['objects']} objects"
        )
    print(
        f"  2 workers vs 1: {workers['speedup_2_vs_1_workers']:.2f}x; "
        f"vs one process without Dask: {workers['speedup_2_workers_vs_process']:.2f}x "
        f"({os.cpu_count()} CPUs)"
    )


# -- targets and report ---------------------------------------------------------------------------------


def evaluate_targets(presets: dict[str, dict], memory: dict | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per target: its threshold, the per-preset values, and whether it was met (None: not applicable)."""

    def per_preset(key: str, threshold: float, only: Callable[[dict], bool] = lambda p: True) -> dict:
        return at_least({n: p[key] for n, p in presets.items() if only(p)}, threshold)

    lowered = lambda p: p["aggregation_lowered_k"]  # noqa: E731
    detail = {
        "speedup_vs_focus": per_preset("speedup_vs_focus", TARGET_SPEEDUP_VS_FOCUS, lowered),
        "model_time_ratio_vs_gt_all": per_preset("model_time_ratio_vs_gt_all", TARGET_MODEL_RATIO_VS_GT),
        "floor_fraction": per_preset("floor_fraction", TARGET_FLOOR_FRACTION),
        "recall": per_preset("recall", TARGET_RECALL),
    }
    if memory is not None:
        detail["memory_ratio"] = {
            "threshold": TARGET_MEMORY_RATIO,
            "values": {memory["preset"]: memory["ratio"]},
            "met": memory["ratio"] <= TARGET_MEMORY_RATIO,
        }
    return detail, targets_met(detail)


def print_presets(presets: dict[str, dict]) -> None:
    header = (
        f"{'preset':11s} {'frames':>6s} {'objects':>7s} {'focus e,K':>9s} {'mxn S':>11s} {'k`':>2s} "
        f"{'#idx F':>7s} {'#idx M':>7s} {'recall':>6s} {'vs F':>6s} {'model/GT':>8s} {'vs GT':>6s} "
        f"{'floor':>6s} {'RSS MB':>6s}"
    )
    print_header(header)
    for name, p in presets.items():
        f, m = p["focus_config"], p["mxn_config"]
        exits, focus = ",".join(map(str, m["exits"])), f"{f['exits'][0]},{f['topk']}"
        print(
            f"{name:11s} {p['frames']:6d} {p['objects']:7d} {focus:>9s} {exits:>11s} "
            f"{m['topk']:2d} {p['indexing_focus']:7d} {p['indexing_mxn']:7d} {p['recall']:6.3f} "
            f"{fmt(p['speedup_vs_focus'], '5.2f')}x {fmt(p['model_time_ratio_vs_gt_all'], '7.2f')}x "
            f"{fmt(p['speedup_vs_gt_all'], '5.2f')}x {fmt(p['floor_fraction'], '6.2f')} "
            f"{p['peak_rss_mb']:6.0f}"
        )
    print("(vs F: focus seconds / mxn seconds; model/GT: gt-all model_s / mxn model_s; vs GT: end to end;")
    print(" floor: mxn ingest frames/s over decode + extraction frames/s; RSS: peak during the mxn ingests)")


def print_stages(presets: dict[str, dict]) -> None:
    """Median seconds per stage of every mode: where the time goes."""
    print(
        f"\n{'preset':11s} {'mode':7s} {'seconds':>8s} " + " ".join(f"{s:>9s}" for s in STAGES) + "  floor s"
    )
    for name, p in presets.items():
        for mode in MODES:
            med = p["median"][mode]
            floor = median(p["floor"]["seconds"])
            stages = " ".join(f"{med[s]:9.2f}" for s in STAGES)
            print(f"{name:11s} {mode:7s} {med['seconds']:8.2f} {stages}  {floor:7.2f}")


def print_limits(presets: dict[str, dict]) -> None:
    """Which reference classes keep K (and k') from being one smaller: usually a class seen in few frames."""
    print("\nwhy not one label fewer (classes below the recall target at K-1 / k'-1: recall, true frames):")
    for name, p in presets.items():
        for method in ("focus", "mxn"):
            limit = p["search"][f"{method}_one_label_fewer"]
            if limit is None:
                continue
            short = ", ".join(
                f"{c} {v['recall']:.3f} of {v['true_frames']}" for c, v in limit["classes_short"].items()
            )
            print(f"  {name:11s} {method:5s} top-{limit['topk']}: {short}")


def print_targets(detail: dict[str, Any]) -> None:
    print()
    for key, d in detail.items():
        values = ", ".join(f"{n} {fmt(v, '.3f')}" for n, v in d["values"].items()) or "no preset applies"
        sign = "<=" if key == "memory_ratio" else ">="
        print(f"  {key:27s} {sign} {d['threshold']:<5g} {verdict(d['met']):8s} ({values})")


def print_disturbance(presets: dict[str, dict]) -> None:
    shares = [
        r["other_processes_cpu_share"] for p in presets.values() for runs in p["runs"].values() for r in runs
    ]
    known = [s for s in shares if s is not None]
    if known:
        print(
            f"CPU taken by other processes during the timed ingests: max {max(known):.0%}, "
            + above_quiet(known, "runs")
        )


def describe(settings: Settings, models: dict[str, MXNModel]) -> dict[str, Any]:
    ingest, gt = models["ingest"], models["gt"]
    macs = exit_macs(ingest.network)
    gt_macs = exit_macs(gt.network)[-1]
    return {
        **settings.describe(),
        "ingest_config": settings.ingest_config().index_key(),
        "ingest_model_macs_per_exit": macs,
        "gt_model_macs": gt_macs,
        "gt_macs_over_exit_macs": [gt_macs / m for m in macs],
        "tensorflow": tf.__version__,
        "faiss_threads": faiss.omp_get_max_threads(),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__, "CI-sized run (~2 minutes)")
    add_clip_arguments(parser, seconds="clip length per preset", seed="world seed")
    parser.add_argument("--rounds", type=int, help="timed ingests per mode (alternating order)")
    parser.add_argument("--memory-preset", choices=sorted(PRESETS), help="preset of the memory check")
    parser.add_argument("--memory-seconds", help="the two clip lengths of the memory check, e.g. 60,600")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory check")
    parser.add_argument("--no-workers", action="store_true", help="skip the Dask workers check")
    parser.add_argument(
        "--workers-only", action="store_true", help="only the Dask workers check (default MXN settings)"
    )
    parser.add_argument(
        "--faiss-threads",
        type=int,
        default=0,
        help="OpenMP threads of FAISS's clustering search (0: default)",
    )
    return parser.parse_args(argv)


def two_lengths(text: str | None) -> tuple[float, float] | None:
    """``--memory-seconds``: the short and the long clip's seconds, e.g. ``60,600``."""
    if not text:
        return None
    short, long = (float(v) for v in text.split(","))
    return short, long


def make_settings(args: argparse.Namespace) -> Settings:
    """The preset (quick or full) with the command line's overrides."""
    return choose_preset(
        args, QUICK, FULL, **clip_overrides(args), rounds=args.rounds, memory_preset=args.memory_preset,
        memory_seconds=two_lengths(args.memory_seconds),
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tf.get_logger().setLevel("ERROR")
    if args.faiss_threads:  # the memory check's children get it through OMP_NUM_THREADS
        faiss.omp_set_num_threads(args.faiss_threads)
        os.environ["OMP_NUM_THREADS"] = str(args.faiss_threads)
    settings = make_settings(args)
    models = load_models(("ingest", "gt"))
    config = describe(settings, models)
    print(
        f"{config['mode']} run: presets {', '.join(settings.presets)}; {settings.seconds:g} s clips at "
        f"{settings.size[0]}x{settings.size[1]}, {settings.fps:g} fps; {settings.rounds} round(s); "
        f"{os.cpu_count()} CPUs, load {config['load_average_at_start'][0]:.2f}",
        flush=True,
    )
    started = time.perf_counter()
    presets: dict[str, dict] = {}
    memory = None
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        for name in () if args.workers_only else settings.presets:
            presets[name] = bench_preset(name, settings, models, Path(tmp))
        if not args.no_memory and not args.workers_only:
            chosen = presets.get(settings.memory_preset, {}).get("mxn_config")
            memory = bench_memory(settings, Path(tmp), chosen)
        workers = None
        if not args.no_workers:
            chosen = presets.get(settings.memory_preset, {}).get("mxn_config")
            workers = bench_workers(settings, Path(tmp), chosen)
    detail, met = evaluate_targets(presets, memory)
    print_presets(presets)
    print_stages(presets)
    print_limits(presets)
    if memory:
        lengths = " and ".join(f"{s:g}" for s in settings.memory_seconds)
        print(
            f"\nmemory ({memory['preset']}, clips of {lengths} s): "
            f"peak RSS {memory['peak_rss_mb'][0]:.0f} -> {memory['peak_rss_mb'][1]:.0f} MB, "
            f"ratio {memory['ratio']:.3f}"
        )
    if workers:
        print_workers(workers)
    print_targets(detail)
    elapsed = time.perf_counter() - started
    print(
        f"paper (Table 5.11): MXN vs Focus ingest speed-up {PAPER['speedup_vs_focus_range'][0]}x-"
        f"{PAPER['speedup_vs_focus_range'][1]}x; total time {elapsed:.0f} s"
    )
    print_disturbance(presets)
    report = {
        "config": config,
        "presets": presets,
        "memory": memory,
        "workers": workers,
        "targets": detail,
        "targets_met": met,
        "paper": PAPER,
        "seconds": elapsed,
    }
    write_result(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
