"""Benchmark the multi-exit network library against its bounds, on CPU.

Three measurements, side by side in one run:

1. **Prefix batching** (the dissertation's Table 5.9, measured there at
   3.89x): serving all five exits of one multi-exit network (MXN) with
   :meth:`ExitRunner.all_exits` against serving five single-exit models cut
   at the same layers, each with its own runner, on the same images and batch
   size. The bound is :func:`mxn.flops.prefix_batching_bound`, the MAC ratio.
2. **Batched early exit**: :meth:`ExitRunner.early_exit` at batch 64 (with
   compaction of the undecided items) against the same engine at batch 1, on a
   briefly trained network with thresholds that send a real share of the
   images out at every exit. Both runs must make the same decisions.
3. **Training**: :func:`mxn.training.train_network` on the MXN against the
   five single-exit models, for the same number of epochs on the same data
   and batch size, without augmentation (the dissertation measured 5.11x).
   The first epoch, which traces the training graph, runs but is not timed;
   a callback times every later step, and the speed-up compares median step
   times (epoch wall times are reported too). In the full run every model is
   trained twice, in alternating order, and the timed epochs are pooled. The
   bound is again the MAC ratio.

Inference timings are medians over interleaved repeats taken after warm-up
calls, so ``tf.function`` tracing is never timed. The machine may be shared:
the script notes how much CPU other processes took during every repeat and
training epoch, and its medians leave out the disturbed ones (unless all
were). It always exits 0: it is a measurement, and it prints which targets
were met.

Usage::

    python scripts/bench_mxn.py --quick --json /tmp/bench_quick.json
    python scripts/bench_mxn.py --json /tmp/bench_full.json
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads: its C++ start-up chatter

import keras
import numpy as np
import tensorflow as tf
from harness import (
    QUIET_SHARE,
    CpuWatch,
    choose_preset,
    given,
    host,
    is_quiet,
    median,
    new_parser,
    print_header,
    quiet_indices,
    timed,
    write_result,
)
from sklearn.datasets import load_digits

from mxn.flops import network_macs, prefix_batching_bound
from mxn.images import resize_batch
from mxn.network import MultiExitNetwork, build_network
from mxn.runner import ExitRunner
from mxn.spec import NetworkSpec, Stem
from mxn.training import TrainConfig, train_network

#: The dissertation's measurements, printed beside ours.
PAPER = {"prefix_batching_speedup": 3.89, "training_speedup": 5.11}
#: What a run should reach: a share of the MAC bound, or a plain speed-up.
TARGET_FRACTION_OF_BOUND = 0.9
TARGET_EARLY_EXIT_SPEEDUP = 3.0


# -- configuration ------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run.

    Args:
        width: width multiplier of the ResNet-18 backbone.
        input_size: side of the square input images.
        stem: ``"imagenet"`` or ``"cifar"`` stem.
        batch_size: batch size for serving, batched early exit and training.
        serve_images: images served in the prefix-batching comparison.
        early_exit_images: held-out images run through the early-exit cascade.
        train_images: training images per epoch.
        train_epochs: timed training epochs (one untimed warm-up epoch runs first).
        train_rounds: times every model is trained (alternating the order); the
            timed epochs of all rounds are pooled.
        repeats: timed repeats of every inference measurement.
        warmup: untimed calls before timing (traces the ``tf.function`` graphs).
        seed: seeds data, weights and training.
    """

    width: float
    input_size: int
    stem: Stem
    batch_size: int
    serve_images: int
    early_exit_images: int
    train_images: int
    train_epochs: int
    train_rounds: int
    repeats: int
    warmup: int = 1
    seed: int = 0

    def spec(self) -> NetworkSpec:
        """The 5-exit ResNet-18 (default exits 1,2,4,6,8) with aggregation on."""
        return NetworkSpec(
            backbone="resnet18",
            num_classes=10,
            input_size=self.input_size,
            width=self.width,
            stem=self.stem,
            aggregation=True,
        )


QUICK = BenchConfig(
    width=0.25,
    input_size=64,
    stem="imagenet",
    batch_size=64,
    serve_images=256,
    early_exit_images=256,
    train_images=512,
    train_epochs=3,
    train_rounds=1,
    repeats=5,
)
#: The full preset keeps the quick preset's width and doubles the input side,
#: so the last ResNet stage works on 4x4 maps rather than 2x2 (the paper's
#: 224 px inputs give 7x7). At 2x2 that stage costs about 3x as much per MAC
#: in training as the rest of the network, which no MAC bound can see (see
#: docs/BENCHMARKS.md, "Input size and the training bound").
FULL = BenchConfig(
    width=0.25,
    input_size=128,
    stem="imagenet",
    batch_size=64,
    serve_images=512,
    early_exit_images=512,
    train_images=1024,
    train_epochs=3,
    train_rounds=2,
    repeats=7,
)


# -- helpers ------------------------------------------------------------------


def synthetic_digits(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits, upscaled to ``size`` and coloured at random.

    Each image gets its own foreground and background colour and a little
    noise, so the task is easy enough to learn in a few epochs but the
    networks' confidences still spread out.
    """
    digits = load_digits()
    gray = resize_batch(list((digits.images * (255.0 / 16.0)).astype(np.uint8)), size)
    mask = gray[..., :1].astype(np.float32) / 255.0
    rng = np.random.default_rng(seed)
    n = len(gray)
    fg = rng.uniform(0.4, 1.0, (n, 1, 1, 3)).astype(np.float32)
    bg = rng.uniform(0.0, 0.5, (n, 1, 1, 3)).astype(np.float32)
    noise = rng.normal(0.0, 0.08, gray.shape).astype(np.float32)
    images = np.clip(bg + (fg - bg) * mask + noise, 0.0, 1.0) * 255.0
    order = rng.permutation(n)
    return images[order].astype(np.uint8), digits.target[order].astype(np.int64)


def build_models(spec: NetworkSpec) -> tuple[MultiExitNetwork, list[MultiExitNetwork]]:
    """The MXN and one single-exit model (no aggregation) per exit position."""
    mxn = build_network(spec)
    singles = [build_network(spec.replace(exits=(e,), aggregation=False)) for e in spec.exits]
    return mxn, singles


def thread_settings() -> dict[str, int]:
    return {
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }


# -- 1. prefix batching -------------------------------------------------------


def bench_prefix_batching(
    mxn: MultiExitNetwork,
    singles: list[MultiExitNetwork],
    images: np.ndarray,
    cfg: BenchConfig,
) -> dict[str, Any]:
    """All five exits of the MXN in one pass vs five single-exit models.

    Each repeat times every model once, interleaved, so a slow spell of the
    machine hits both sides alike; medians are over the repeats during which
    other processes stayed (nearly) idle.
    """
    mxn_runner = ExitRunner(mxn, batch_size=cfg.batch_size)
    single_runners = [ExitRunner(s, batch_size=cfg.batch_size) for s in singles]
    runners = [mxn_runner, *single_runners]
    for _ in range(cfg.warmup):
        for runner in runners:
            runner.all_exits(images[: cfg.batch_size])
    mxn_times: list[float] = []
    single_times: list[list[float]] = [[] for _ in singles]
    shares: list[float | None] = []
    for _ in range(cfg.repeats):
        watch = CpuWatch.start()
        mxn_times.append(timed(lambda: mxn_runner.all_exits(images)))
        for k, runner in enumerate(single_runners):
            single_times[k].append(timed(lambda e=runner: e.all_exits(images)))
        shares.append(watch.others_share())
    used = quiet_indices(shares)
    mxn_s = median([mxn_times[i] for i in used])
    singles_s = [median([t[i] for i in used]) for t in single_times]
    speedup = sum(singles_s) / mxn_s
    bound = prefix_batching_bound(mxn, singles)
    return {
        "images": len(images),
        "batch_size": cfg.batch_size,
        "repeats": cfg.repeats,
        "single_exits": [s.spec.exits[0] for s in singles if s.spec.exits],
        "mxn_macs": network_macs(mxn),
        "single_macs": [network_macs(s) for s in singles],
        "mxn_seconds": mxn_s,
        "single_seconds": singles_s,
        "singles_total_seconds": sum(singles_s),
        "mxn_images_per_second": len(images) / mxn_s,
        "raw_mxn_seconds": mxn_times,
        "raw_single_seconds": single_times,
        "repeat_other_processes_cpu_share": shares,
        "quiet_repeats": sum(map(is_quiet, shares)),
        "prefix_batching_speedup": speedup,
        "prefix_batching_bound": bound,
        "prefix_batching_fraction_of_bound": speedup / bound,
    }


# -- 3. training --------------------------------------------------------------


class TrainTimer(keras.callbacks.Callback):
    """Wall seconds of every training epoch and of every step within it.

    Also notes, per epoch, the share of the CPU other processes took.
    """

    def __init__(self) -> None:
        super().__init__()
        self.epoch_seconds: list[float] = []
        self.step_seconds: list[list[float]] = []
        self.others_share: list[float | None] = []
        self._epoch_start = self._step_start = 0.0
        self._watch = CpuWatch.start()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.step_seconds.append([])
        self._watch = CpuWatch.start()
        self._epoch_start = time.perf_counter()

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._step_start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.step_seconds[-1].append(time.perf_counter() - self._step_start)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_seconds.append(time.perf_counter() - self._epoch_start)
        self.others_share.append(self._watch.others_share())


class TimedModel(keras.Model):
    """A functional model whose ``fit`` also runs a :class:`TrainTimer`.

    ``train_network`` builds its own callback list, so this is how the
    benchmark times epochs and steps without touching the library.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.train_timer = TrainTimer()

    def fit(self, *args: Any, callbacks: list | None = None, **kwargs: Any) -> Any:
        return super().fit(*args, callbacks=[*(callbacks or []), self.train_timer], **kwargs)


def with_train_timer(network: MultiExitNetwork) -> MultiExitNetwork:
    """The same network (shared layers and weights) whose training model is timed.

    The outputs stay keyed ``exit_i``, as ``train_network`` names its losses
    and labels (a one-exit network needs the dict: Keras 3 hands a one-element
    output list back as a bare tensor, which a dict of labels does not match).
    """
    model = network.model
    if isinstance(model.output, dict):
        outputs = dict(model.output)
    else:
        outputs = {f"exit_{i}": t for i, t in enumerate(model.outputs)}
    timed_model = TimedModel(model.inputs, outputs, name=f"{model.name}_timed")
    return dataclasses.replace(network, model=timed_model)


def train_timed(network: MultiExitNetwork, x: np.ndarray, y: np.ndarray, cfg: BenchConfig) -> dict:
    """Train for one untimed warm-up epoch plus ``cfg.train_epochs`` timed ones."""
    wrapped = with_train_timer(network)
    epochs = cfg.train_epochs + 1
    config = TrainConfig(
        epochs=epochs,
        batch_size=cfg.batch_size,
        augment=False,
        progress=False,
        seed=cfg.seed,
        plateau_patience=epochs + 10,
        early_stopping_patience=epochs + 10,
    )
    watch = CpuWatch.start()
    result = train_network(wrapped, x, y, config=config)
    timer = wrapped.model.train_timer
    if result.epochs_run != epochs or len(timer.epoch_seconds) != epochs:
        raise RuntimeError(f"expected {epochs} epochs, ran {result.epochs_run}")
    return {
        "exits": list(network.spec.exits or ()),
        "epoch_seconds": timer.epoch_seconds,
        "step_seconds": timer.step_seconds,
        "epoch_other_processes_cpu_share": timer.others_share,
        "steps_per_epoch": len(timer.step_seconds[-1]),
        "total_seconds_with_tracing": result.seconds,
        "final_loss": result.history["loss"][-1],
        "other_processes_cpu_share": watch.others_share(),
    }


def summarise_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One model's timed epochs (each round's first left out), pooled over its rounds.

    Only epochs during which other processes stayed (nearly) idle count,
    unless there were none.
    """
    seconds: list[float] = []
    steps: list[list[float]] = []
    shares: list[float | None] = []
    for run in runs:
        seconds += run["epoch_seconds"][1:]
        steps += run["step_seconds"][1:]
        shares += run["epoch_other_processes_cpu_share"][1:]
    used = quiet_indices(shares)
    return {
        "exits": runs[0]["exits"],
        "steps_per_epoch": runs[0]["steps_per_epoch"],
        "timed_epochs": len(seconds),
        "quiet_epochs": sum(map(is_quiet, shares)),
        "median_step_seconds": median([t for i in used for t in steps[i]]),
        "median_epoch_seconds": median([seconds[i] for i in used]),
        "total_seconds_with_tracing": min(r["total_seconds_with_tracing"] for r in runs),
        "rounds": runs,
    }


def bench_training(
    mxn: MultiExitNetwork,
    singles: list[MultiExitNetwork],
    x: np.ndarray,
    y: np.ndarray,
    cfg: BenchConfig,
) -> dict[str, Any]:
    """Training time of the MXN vs the sum over the single-exit models.

    The headline speed-up compares median step times over the timed epochs
    (every step is one full batch of the same size, so this is the per-epoch
    ratio without the per-epoch overhead); the ratio of median epoch wall
    times and of whole runs including tracing are reported beside it. Every
    model is trained ``cfg.train_rounds`` times, in alternating order; its
    timed epochs are pooled, keeping those during which other processes
    stayed (nearly) idle.
    """
    models = [mxn, *singles]
    runs: list[list[dict[str, Any]]] = [[] for _ in models]
    for round_index in range(cfg.train_rounds):
        order = range(len(models)) if round_index % 2 == 0 else reversed(range(len(models)))
        for k in order:
            runs[k].append(train_timed(models[k], x, y, cfg))
    mxn_run, *single_runs = [summarise_rounds(r) for r in runs]
    bound = prefix_batching_bound(mxn, singles)

    def ratio(key: str) -> float:
        return sum(r[key] for r in single_runs) / mxn_run[key]

    speedup = ratio("median_step_seconds")
    return {
        "images": len(x),
        "batch_size": cfg.batch_size,
        "timed_epochs": cfg.train_epochs,
        "warmup_epochs": 1,
        "rounds": cfg.train_rounds,
        "augment": False,
        "quiet_epochs_fewest": min(r["quiet_epochs"] for r in (mxn_run, *single_runs)),
        "mxn": mxn_run,
        "singles": single_runs,
        "mxn_step_seconds": mxn_run["median_step_seconds"],
        "singles_total_step_seconds": sum(r["median_step_seconds"] for r in single_runs),
        "speedup_from_epoch_times": ratio("median_epoch_seconds"),
        "speedup_including_tracing": ratio("total_seconds_with_tracing"),
        "training_speedup": speedup,
        "training_bound": bound,
        "training_fraction_of_bound": speedup / bound,
    }


# -- 2. early exit ------------------------------------------------------------


def quantile_thresholds(outputs: Sequence[np.ndarray], shares: Sequence[float]) -> list[float]:
    """Thresholds under which about ``shares[i]`` of all items leave at exit ``i``.

    Fitted as a cascade on the given outputs: exit ``i`` sees only the items
    earlier exits kept. Each threshold sits halfway between two neighbouring
    confidences, so no item is on the boundary; the last exit takes the rest.
    """
    never = 2.0  # above any softmax confidence
    n = len(outputs[0])
    remaining = np.ones(n, dtype=bool)
    thresholds: list[float] = []
    for i, out in enumerate(outputs[:-1]):
        conf = out.max(axis=1)
        pool = np.sort(conf[remaining])[::-1]
        k = min(len(pool) - 1, round(shares[i] * n))
        threshold = never if k <= 0 else float((pool[k - 1] + pool[k]) / 2)
        thresholds.append(threshold)
        remaining &= conf < threshold
    return [*thresholds, 0.0]


def bench_early_exit(
    mxn: MultiExitNetwork, images: np.ndarray, labels: np.ndarray, cfg: BenchConfig
) -> dict[str, Any]:
    """Batched early exit with compaction vs one image at a time, same thresholds."""
    batched = ExitRunner(mxn, batch_size=cfg.batch_size)
    single = ExitRunner(mxn, batch_size=1)
    outputs = batched.all_exits(images).outputs
    exit_shares = [1.0 / mxn.num_exits] * mxn.num_exits
    thresholds = quantile_thresholds(outputs, exit_shares)
    run_all = [None] * mxn.num_exits  # no exit decides: every stage gets traced
    for _ in range(cfg.warmup):
        batched.early_exit(images[: cfg.batch_size], run_all)
        batched.early_exit(images[: cfg.batch_size], thresholds)
        single.early_exit(images[:1], run_all)
    batched_times: list[float] = []
    single_times: list[float] = []
    shares: list[float | None] = []
    for _ in range(cfg.repeats):
        watch = CpuWatch.start()
        batched_times.append(timed(lambda: batched.early_exit(images, thresholds)))
        single_times.append(timed(lambda: single.early_exit(images, thresholds)))
        shares.append(watch.others_share())
    used = quiet_indices(shares)
    result_b = batched.early_exit(images, thresholds)
    result_1 = single.early_exit(images, thresholds)
    same_exit = result_b.exit_taken == result_1.exit_taken
    same_pred = result_b.predictions == result_1.predictions
    counts = result_b.exit_counts(mxn.num_exits)
    batched_s = median([batched_times[i] for i in used])
    single_s = median([single_times[i] for i in used])
    return {
        "images": len(images),
        "batch_size": cfg.batch_size,
        "repeats": cfg.repeats,
        "thresholds": thresholds,
        "exit_share": {str(i): counts[i] / len(images) for i in sorted(counts)},
        "accuracy_per_exit": [float((o.argmax(1) == labels).mean()) for o in outputs],
        "cascade_accuracy": float((result_b.predictions == labels).mean()),
        "decisions_identical": bool(same_exit.all() and same_pred.all()),
        "exit_mismatches": int((~same_exit).sum()),
        "prediction_mismatches": int((~same_pred).sum()),
        "max_output_difference": float(np.abs(result_b.outputs - result_1.outputs).max()),
        "batched_seconds": batched_s,
        "one_at_a_time_seconds": single_s,
        "batched_ms_per_image": 1000 * batched_s / len(images),
        "one_at_a_time_ms_per_image": 1000 * single_s / len(images),
        "raw_batched_seconds": batched_times,
        "raw_one_at_a_time_seconds": single_times,
        "repeat_other_processes_cpu_share": shares,
        "quiet_repeats": sum(map(is_quiet, shares)),
        "early_exit_batch_speedup": single_s / batched_s,
    }


# -- report -------------------------------------------------------------------


def targets(prefix: dict, early: dict, train: dict) -> dict[str, bool]:
    return {
        "prefix_batching": prefix["prefix_batching_fraction_of_bound"] >= TARGET_FRACTION_OF_BOUND,
        "early_exit_batch": early["early_exit_batch_speedup"] >= TARGET_EARLY_EXIT_SPEEDUP,
        "training": train["training_fraction_of_bound"] >= TARGET_FRACTION_OF_BOUND,
    }


def describe_config(cfg: BenchConfig, quick: bool) -> dict[str, Any]:
    spec = cfg.spec()
    return {
        "mode": "quick" if quick else "full",
        **dataclasses.asdict(cfg),
        "backbone": spec.backbone,
        "exits": list(spec.exits or ()),
        "aggregation": spec.aggregation,
        "singles": "spec.replace(exits=(e,), aggregation=False) for each exit e",
        **host(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gpus": len(tf.config.list_physical_devices("GPU")),
        **thread_settings(),
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
    }


def print_config(config: dict[str, Any]) -> None:
    print("configuration:")
    for key in (
        "mode", "backbone", "exits", "aggregation", "width", "input_size", "stem",
        "batch_size", "serve_images", "early_exit_images", "train_images", "train_epochs",
        "train_rounds", "repeats", "warmup", "seed", "cpu_count", "gpus",
        "intra_op_threads", "inter_op_threads", "tensorflow", "keras",
    ):  # fmt: skip
        print(f"  {key:18s} {config[key]}")
    print("  (thread counts of 0 mean TensorFlow's default: one per core)")


def print_details(prefix: dict, early: dict, train: dict) -> None:
    """The per-model timings behind the summary table."""
    print(
        "\nprefix batching (median seconds to serve the images, over "
        f"{quiet_note(prefix['quiet_repeats'], prefix['repeats'], 'repeats')}):"
    )
    print(f"  MXN, all 5 exits:      {prefix['mxn_seconds']:.4f}")
    for exit_pos, s in zip(prefix["single_exits"], prefix["single_seconds"], strict=True):
        print(f"  single exit at {exit_pos}:     {s:.4f}")
    print(f"  singles, total:        {prefix['singles_total_seconds']:.4f}")
    print(f"\nearly exit (medians over {quiet_note(early['quiet_repeats'], early['repeats'], 'repeats')}):")
    shares = ", ".join(f"exit {k}: {v:.1%}" for k, v in early["exit_share"].items())
    print(f"  share per exit ({len(early['exit_share']) - 1} exits, -1 = undecided): {shares}")
    print(f"  thresholds: {[round(t, 4) for t in early['thresholds']]}")
    print(f"  accuracy per exit (all items): {[round(a, 3) for a in early['accuracy_per_exit']]}")
    print(
        f"  batch {early['batch_size']}: {early['batched_ms_per_image']:.3f} ms/image, "
        f"batch 1: {early['one_at_a_time_ms_per_image']:.3f} ms/image"
    )
    print(
        f"  identical decisions: {early['decisions_identical']} "
        f"(exit mismatches {early['exit_mismatches']}, prediction mismatches "
        f"{early['prediction_mismatches']}, max output diff {early['max_output_difference']:.2e})"
    )
    print(
        "\ntraining (median ms per step over the timed epochs of "
        f"{train['rounds']} round(s); each round's first epoch untimed):"
    )
    runs = [("MXN", train["mxn"])]
    runs += [(f"single exit at {r['exits'][0]}", r) for r in train["singles"]]
    for name, run in runs:
        print(
            f"  {name + ':':22s} {1000 * run['median_step_seconds']:8.1f} ms/step "
            f"({run['steps_per_epoch']} steps/epoch, "
            f"median epoch {run['median_epoch_seconds']:.2f} s; "
            f"{quiet_note(run['quiet_epochs'], run['timed_epochs'], 'epochs')})"
        )
    print(f"  singles, total:        {1000 * train['singles_total_step_seconds']:8.1f} ms/step")
    print(
        f"  speed-up from median epoch times: {train['speedup_from_epoch_times']:.2f}x; "
        f"from whole runs including the tracing epoch: {train['speedup_including_tracing']:.2f}x"
    )


def print_speedups(prefix: dict, early: dict, train: dict, met: dict[str, bool]) -> None:
    rows = [
        (
            "prefix batching",
            prefix["prefix_batching_speedup"],
            prefix["prefix_batching_bound"],
            f">= {TARGET_FRACTION_OF_BOUND:.0%} of bound",
            met["prefix_batching"],
            f"{PAPER['prefix_batching_speedup']:.2f}x",
        ),
        (
            "early exit b64 vs b1",
            early["early_exit_batch_speedup"],
            None,
            f">= {TARGET_EARLY_EXIT_SPEEDUP:.1f}x",
            met["early_exit_batch"],
            "n/a (ran b1)",
        ),
        (
            "training (per epoch)",
            train["training_speedup"],
            train["training_bound"],
            f">= {TARGET_FRACTION_OF_BOUND:.0%} of bound",
            met["training"],
            f"{PAPER['training_speedup']:.2f}x",
        ),
    ]
    header = f"{'measurement':22s} {'speed-up':>9s} {'bound':>7s} {'of bound':>9s}  "
    header += f"{'target':18s} {'met':4s} {'paper':>12s}"
    print_header(header)
    for name, speedup, bound, target, ok, paper in rows:
        bound_s = f"{bound:.2f}x" if bound else "-"
        frac_s = f"{speedup / bound:.1%}" if bound else "-"
        print(
            f"{name:22s} {speedup:8.2f}x {bound_s:>7s} {frac_s:>9s}  "
            f"{target:18s} {'yes' if ok else 'NO':4s} {paper:>12s}"
        )


# -- main ---------------------------------------------------------------------


#: Config fields the command line may override: (field, type, help).
OVERRIDES: tuple[tuple[str, type, str], ...] = (
    ("width", float, "width multiplier"),
    ("input_size", int, "input image side in pixels (a multiple of 32)"),
    ("repeats", int, "timed repeats of each inference measurement"),
    ("train_images", int, "training images (the digits set has 1797 in all)"),
    ("train_epochs", int, "timed training epochs"),
    ("train_rounds", int, "training rounds per model"),
    ("seed", int, "seed of data, weights and training"),
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__, "CI-sized run (under 2 minutes)")
    parser.add_argument(
        "--threads", type=int, default=0, help="TensorFlow intra- and inter-op threads (0: default)"
    )
    for name, kind, text in OVERRIDES:
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, help=f"override the {text}")
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> BenchConfig:
    """The preset (quick or full) with the command line's overrides."""
    return choose_preset(args, QUICK, FULL, **given(args, [name for name, _, _ in OVERRIDES]))


def with_cpu_watch(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one benchmark and note how much CPU other processes took meanwhile."""
    watch = CpuWatch.start()
    result = fn()
    result["other_processes_cpu_share"] = watch.others_share()
    return result


def run_benchmarks(cfg: BenchConfig) -> tuple[dict, dict, dict]:
    """Prefix batching, training, then early exit on the MXN that training trained."""
    keras.utils.set_random_seed(cfg.seed)
    images, labels = synthetic_digits(cfg.input_size, cfg.seed)
    x_train, y_train = images[: cfg.train_images], labels[: cfg.train_images]
    held_out, held_labels = images[cfg.train_images :], labels[cfg.train_images :]
    needed = max(cfg.serve_images, cfg.early_exit_images)
    if len(held_out) < needed:
        raise SystemExit(
            f"{len(images)} images: {cfg.train_images} for training leaves {len(held_out)}, "
            f"but {needed} are needed held out; lower --train-images"
        )
    mxn, singles = build_models(cfg.spec())

    print("\nmeasuring prefix batching ...", flush=True)
    serve = held_out[: cfg.serve_images].astype(np.float32)
    prefix = with_cpu_watch(lambda: bench_prefix_batching(mxn, singles, serve, cfg))
    print("measuring training (it also trains the MXN that early exit runs) ...", flush=True)
    train = with_cpu_watch(lambda: bench_training(mxn, singles, x_train, y_train, cfg))
    print("measuring early exit ...", flush=True)
    n = cfg.early_exit_images
    early_images = held_out[:n].astype(np.float32)
    early = with_cpu_watch(lambda: bench_early_exit(mxn, early_images, held_labels[:n], cfg))
    return prefix, early, train


def quiet_note(quiet: int, total: int, what: str) -> str:
    """Which samples a median is over: the undisturbed ones, or all when none was."""
    if quiet == total:
        return f"all {total} {what}"
    if quiet == 0:
        return f"all {total} {what}, every one disturbed"
    return f"the {quiet} undisturbed of {total} {what}"


def print_disturbance(prefix: dict, early: dict, train: dict) -> None:
    """Say how much CPU other processes took, and warn when no sample escaped them."""
    named = {"prefix batching": prefix, "early exit": early, "training": train}
    known = {k: v["other_processes_cpu_share"] for k, v in named.items()}
    if any(v is None for v in known.values()):
        return
    text = ", ".join(f"{k} {v:.0%}" for k, v in known.items())
    print(f"CPU taken by other processes while measuring: {text}")
    quiet = {
        "prefix batching": prefix["quiet_repeats"],
        "early exit": early["quiet_repeats"],
        "training": train["quiet_epochs_fewest"],
    }
    starved = [k for k, v in quiet.items() if v == 0]
    if starved:
        print(
            f"  WARNING: no undisturbed sample for {', '.join(starved)}; "
            "those numbers are disturbed: rerun on a quiet machine"
        )
    elif max(known.values()) > QUIET_SHARE:
        print(f"  (only samples during which others took <= {QUIET_SHARE:.0%} were used)")


def build_report(
    config: dict, prefix: dict, early: dict, train: dict, met: dict[str, bool], seconds: float
) -> dict[str, Any]:
    return {
        "config": config,
        "prefix_batching_speedup": prefix["prefix_batching_speedup"],
        "prefix_batching_bound": prefix["prefix_batching_bound"],
        "prefix_batching_fraction_of_bound": prefix["prefix_batching_fraction_of_bound"],
        "early_exit_batch_speedup": early["early_exit_batch_speedup"],
        "early_exit_decisions_identical": early["decisions_identical"],
        "training_speedup": train["training_speedup"],
        "training_bound": train["training_bound"],
        "training_fraction_of_bound": train["training_fraction_of_bound"],
        "paper": PAPER,
        "targets_met": met,
        "details": {"prefix_batching": prefix, "early_exit": early, "training": train},
        "seconds": seconds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Every engine owns its tf.functions; TensorFlow's "retracing" warning
    # counts them together and fires falsely.
    tf.get_logger().setLevel("ERROR")
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    cfg = make_config(args)
    config = describe_config(cfg, args.quick)
    print_config(config)
    started = time.perf_counter()
    prefix, early, train = run_benchmarks(cfg)
    met = targets(prefix, early, train)
    print_details(prefix, early, train)
    print_speedups(prefix, early, train, met)
    elapsed = time.perf_counter() - started
    print(f"\ntargets met: {sum(met.values())}/{len(met)}; total time {elapsed:.0f} s")
    print_disturbance(prefix, early, train)
    write_result(args.json, build_report(config, prefix, early, train, met, elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
