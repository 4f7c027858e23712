"""The dissertation's accuracy tables, reproduced on the traffic world's crops.

Side by side in one run, every model trained on the same crops with the same
recipe and seed, and measured on the same held-out test crops:

* Tables 5.2 / 5.4 / 5.7: per-exit top-1 accuracy of one multi-exit network
  against single-exit networks cut at the same layers;
* Table 5.6: the multi-exit network with and without feature aggregation;
* Table 5.8: exit precision (share of exiting items that are right) and
  recall (share of items that exit) at confidence thresholds 0.5 and 0.7,
  cross-entropy against focal loss (gamma 2).

Usage::

    python scripts/bench_accuracy.py --quick --json out/bench_accuracy_quick.json
    python scripts/bench_accuracy.py --json out/bench_accuracy.json

``--data DIR`` uses an existing crops folder (``mxn world crops``);
otherwise the crops are rendered into ``out/bench-crops-<mode>`` first.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads: its C++ start-up chatter

import numpy as np
from harness import new_parser, write_result

from mxn.calibration import exit_precision_recall
from mxn.datasets.world.crop_set import CropConfig, build_crops
from mxn.images import load_dataset
from mxn.network import build_network
from mxn.runner import ExitRunner
from mxn.spec import NetworkSpec
from mxn.training import TrainConfig, train_network

THRESHOLDS = (0.5, 0.7)

#: The dissertation's figures, printed beside ours (ImageNet / VOC; not comparable
#: in absolute terms, only in direction).
PAPER = {
    "table_5_2_single": [47.84, 57.82, 61.16, 66.25, 66.44],
    "table_5_2_mxn": [45.0, 55.76, 59.52, 64.51, 65.68],
    "table_5_6_imagenet_improved": [45.69, 58.88, 62.88, 67.64, 67.93],
    "table_5_8_voc_05_precision_ce": [79.77, 84.02, 83.07, 84.05],
    "table_5_8_voc_05_precision_fl": [84.69, 88.72, 87.55, 88.16],
}


@dataclass(frozen=True)
class Mode:
    """Sizes of one run."""

    name: str
    crop_seconds: float
    input_size: int
    width: float
    epochs: int


MODES = {
    "quick": Mode("quick", crop_seconds=40.0, input_size=32, width=0.25, epochs=4),
    "full": Mode("full", crop_seconds=600.0, input_size=32, width=0.25, epochs=15),
}


def crops(mode: Mode, data: str | None) -> dict:
    """The crops data set, rendered first if needed."""
    if data:
        root = Path(data)
    else:
        root = Path("out") / f"bench-crops-{mode.name}"
        if not (root / "manifest.json").exists():
            s = mode.crop_seconds
            seconds = {"train": s, "val": 0.2 * s, "calibration": 0.2 * s, "test": 0.3 * s}
            build_crops(root, CropConfig(size=mode.input_size, seconds=seconds), seed=7)
    return load_dataset(root, mode.input_size)


def train(spec: NetworkSpec, splits: dict, config: TrainConfig) -> tuple[ExitRunner, float]:
    """Train one network; return its engine and the training seconds."""
    net = build_network(spec, seed=config.seed)
    train_set, val = splits["train"], splits["val"]
    result = train_network(net, train_set.images, train_set.labels, val.images, val.labels, config)
    return ExitRunner(net), result.seconds


def accuracy(outputs: list[np.ndarray], labels: np.ndarray) -> list[float]:
    return [100.0 * float(np.mean(o.argmax(axis=1) == labels)) for o in outputs]


def main() -> int:
    parser = new_parser(__doc__, "CI-sized run (a few minutes on 2 cores)")
    parser.add_argument("--data", help="an existing crops folder (mxn world crops)")
    parser.add_argument("--epochs", type=int, help="override the mode's epochs")
    args = parser.parse_args()
    mode = MODES["quick" if args.quick else "full"]
    epochs = args.epochs or mode.epochs
    splits = crops(mode, args.data)
    test = splits["test"]
    classes = splits["train"].classes
    print(
        f"{mode.name} run: {len(splits['train'])} train / {len(test)} test crops, "
        f"{len(classes)} classes, {mode.input_size} px, width {mode.width}, {epochs} epochs"
    )

    base = NetworkSpec(input_size=mode.input_size, width=mode.width, num_classes=len(classes))
    ce = TrainConfig(loss="ce", optimizer="adam", learning_rate=0.003, epochs=epochs, progress=False)
    focal = TrainConfig(loss="focal", optimizer="adam", learning_rate=0.003, epochs=epochs, progress=False)

    results: dict = {
        "mode": mode.__dict__ | {"epochs": epochs},
        "classes": classes,
        "test_items": len(test),
        "train_seconds": {},
    }
    outputs = {}
    plan = [
        ("mxn_aggregation", base, ce),
        ("mxn_plain", base.replace(aggregation=False), ce),
        ("mxn_aggregation_focal", base, focal),
    ]
    plan += [
        (f"single_exit_{i}", base.replace(exits=(e,), aggregation=False), ce)
        for i, e in enumerate(base.exits or ())
    ]
    for name, spec, config in plan:
        start = time.perf_counter()
        runner, seconds = train(spec, splits, config)
        outputs[name] = runner.all_exits(test.images).outputs
        results["train_seconds"][name] = seconds
        print(f"  trained {name:24s} {seconds:6.1f} s  (total {time.perf_counter() - start:.1f} s)")

    singles = [accuracy(outputs[f"single_exit_{i}"], test.labels)[0] for i in range(base.num_exits)]
    table = {
        "single_exit": singles,
        "mxn_plain": accuracy(outputs["mxn_plain"], test.labels),
        "mxn_aggregation": accuracy(outputs["mxn_aggregation"], test.labels),
        "mxn_aggregation_focal": accuracy(outputs["mxn_aggregation_focal"], test.labels),
    }
    results["exit_accuracy"] = table
    print("\nTables 5.2 / 5.4 / 5.6 / 5.7: top-1 accuracy (%) per exit on the test crops")
    print(f"{'exit':>4} {'single-exit':>12} {'MXN':>8} {'MXN+agg':>8} {'MXN+agg FL':>11}")
    for i in range(base.num_exits):
        print(
            f"{i:>4} {singles[i]:12.2f} {table['mxn_plain'][i]:8.2f} "
            f"{table['mxn_aggregation'][i]:8.2f} {table['mxn_aggregation_focal'][i]:11.2f}"
        )
    total_single = sum(results["train_seconds"][f"single_exit_{i}"] for i in range(base.num_exits))
    results["training_speedup_vs_singles"] = total_single / results["train_seconds"]["mxn_plain"]

    print("\nTable 5.8: exit precision / recall (%) at a confidence threshold, CE vs focal loss")
    majority = base.num_exits // 2 + 1
    results["targets_met"] = {}
    for t in THRESHOLDS:
        key = f"{t:.1f}".replace(".", "")
        rows = {}
        for loss, name in (("ce", "mxn_aggregation"), ("focal", "mxn_aggregation_focal")):
            pr = [exit_precision_recall(o, test.labels, t) for o in outputs[name]]
            rows[loss] = {"precision": [100 * p for p, _ in pr], "recall": [100 * r for _, r in pr]}
        ce_p, fl_p = np.array(rows["ce"]["precision"]), np.array(rows["focal"]["precision"])
        gain = float(np.nanmean(fl_p - ce_p))
        higher = int(np.sum(fl_p > ce_p))
        results[f"table_5_8_{key}"] = rows
        results[f"focal_precision_gain_{key}"] = gain
        results[f"focal_higher_precision_exits_{key}"] = higher
        results["targets_met"][f"focal_precision_higher_on_majority_{key}"] = higher >= majority
        print(f"threshold {t}:  exit  precision CE -> FL   recall CE -> FL")
        for i in range(base.num_exits):
            print(
                f"{'':15s}{i:>4}  {ce_p[i]:8.1f} -> {fl_p[i]:5.1f}  "
                f"{rows['ce']['recall'][i]:7.1f} -> {rows['focal']['recall'][i]:5.1f}"
            )
        print(f"  focal precision gain {gain:+.2f} points (mean over exits), higher on {higher} exits")
    results["paper"] = PAPER
    print(f"\ntargets met: {results['targets_met']}")
    write_result(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
