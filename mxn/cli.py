"""The ``mxn`` command line: a thin layer over the library.

Each subcommand parses its options, calls one library function and prints
what came back. Errors the user can fix (a missing file, a corrupt model, a
bad option) become one clear line and a non-zero exit code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any

import click

EXAMPLES_TRAIN = """
Examples:

  mxn train crops/ --out models/ingest.mxn --width 0.25 --input-size 64

  mxn train crops/ --out models/query.mxn --loss focal --gamma 2 --epochs 40
"""


def friendly_errors(fn: Callable) -> Callable:
    """Turn the library's user-facing errors into ``Error: ...`` and exit code 1."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from ingest.decode import VideoError
        from mxn.images import DatasetError
        from mxn.modelfile import ModelFileError
        from mxn.spec import SpecError
        from storage.store import StoreError

        user_errors = (
            ModelFileError,
            DatasetError,
            SpecError,
            VideoError,
            StoreError,
            ValueError,
            FileNotFoundError,
        )
        try:
            return fn(*args, **kwargs)
        except user_errors as err:
            raise click.ClickException(str(err)) from err

    return wrapper


def _floats(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError as err:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from err


def _write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        from mxn.report import write_json

        click.echo(f"wrote {write_json(path, data)}")


def _fmt(value: float | None, pct: bool = True) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if pct else f"{value:.3f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for k, row in enumerate(cells):
        click.echo("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if k == 0:
            click.echo("  ".join("-" * w for w in widths))


def print_fit_report(report, classes: Sequence[str]) -> None:
    """Per-exit accuracy, thresholds and early-exit shares of a freshly fitted model."""
    ev, cal = report.evaluation, report.calibration
    click.echo(f"\n{len(classes)} classes; splits: {report.split_sizes}")
    click.echo(f"trained {report.train.epochs_run} epochs in {report.train.seconds:.1f} s\n")
    rows = []
    for i, acc in enumerate(ev.exit_accuracy):
        ex = cal.exits[i]
        share = ev.early_exit_share[i] if ev.early_exit_share else None
        rows.append([i, _fmt(acc), _fmt(ex.threshold, pct=False), _fmt(ex.precision), _fmt(share)])
    print_table(["exit", "test accuracy", "threshold", "calib. precision", "test share exiting"], rows)
    click.echo(
        f"\nearly exit on test data: accuracy {_fmt(ev.early_exit_accuracy)}, "
        f"undecided after the last exit {_fmt(ev.undecided_share)} "
        f"(thresholds for {100 * cal.target_precision:.0f}% precision)"
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mxn")
def main() -> None:
    """mxn: video queries and face labelling with multi-exit networks.

    Multi-exit networks (MXNs) attach cheap classifiers part-way through a
    CNN, so easy inputs are answered early and only hard ones pay for the
    whole network.
    """
    from mxn.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()


class TrainGroup(click.Group):
    """``mxn train DATA ...`` is ``mxn train images DATA ...``; ``mxn train faces ...`` trains a face MXN."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["images", *args]
        return super().parse_args(ctx, args)


@main.group(cls=TrainGroup)
def train() -> None:
    """Train a multi-exit network: `mxn train DATA` (= `mxn train images DATA`) or `mxn train faces`."""


@train.command("images", epilog=EXAMPLES_TRAIN)
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out", "-o", required=True, type=click.Path(dir_okay=False), help="Model file to write (.mxn)."
)
@click.option(
    "--backbone", type=click.Choice(["resnet18", "mobilenet_v1"]), default="resnet18", show_default=True
)
@click.option("--width", type=float, default=0.25, show_default=True, help="Width multiplier.")
@click.option("--input-size", type=int, default=64, show_default=True, help="Input side in pixels.")
@click.option("--exits", default=None, help="Exit positions, e.g. 1,2,4,6,8 (default: the backbone's).")
@click.option("--stem", type=click.Choice(["imagenet", "cifar"]), default="imagenet", show_default=True)
@click.option(
    "--aggregation/--no-aggregation", default=True, show_default=True, help="Feature aggregation blocks."
)
@click.option("--loss", type=click.Choice(["ce", "focal"]), default="ce", show_default=True)
@click.option("--gamma", type=float, default=2.0, show_default=True, help="Focal loss gamma.")
@click.option("--exit-weights", default=None, help="Per-exit loss weights, e.g. 1,1,1,1,1.")
@click.option(
    "--epochs", type=int, default=30, show_default=True, help="Most epochs (early stopping may end sooner)."
)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), default="sgd", show_default=True)
@click.option("--lr", type=float, default=0.05, show_default=True, help="Initial learning rate.")
@click.option("--no-augment", is_flag=True, help="Train without augmentation.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--target-precision",
    type=float,
    default=0.99,
    show_default=True,
    help="Precision each exit's threshold must reach.",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the report as JSON.")
@friendly_errors
def train_images(
    data: str,
    out: str,
    backbone: str,
    width: float,
    input_size: int,
    exits: str | None,
    stem: str,
    aggregation: bool,
    loss: str,
    gamma: float,
    exit_weights: str | None,
    epochs: int,
    batch_size: int,
    optimizer: str,
    lr: float,
    no_augment: bool,
    seed: int,
    target_precision: float,
    json_out: str | None,
) -> None:
    """Train a multi-exit network on a class-per-folder image directory.

    DATA holds one folder per class (DATA/car/*.jpg, DATA/bus/*.jpg, ...), or
    train/ val/ calibration/ test/ folders that each hold the class folders.
    Missing splits are carved from the training images. Thresholds are
    calibrated on held-out images and stored in the model file.
    """
    from mxn.fit import fit_model
    from mxn.images import load_dataset
    from mxn.modelfile import save_model
    from mxn.spec import NetworkSpec, parse_exits
    from mxn.training import TrainConfig

    spec = NetworkSpec(
        backbone=backbone,
        width=width,
        input_size=input_size,
        stem=stem,
        exits=parse_exits(exits) if exits else None,
        aggregation=aggregation,
    )
    config = TrainConfig(
        loss=loss,
        gamma=gamma,
        exit_weights=_floats(exit_weights),
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        learning_rate=lr,
        augment=not no_augment,
        seed=seed,
    )
    click.echo(f"loading {data} at {input_size}x{input_size} ...")
    splits = load_dataset(data, input_size)
    model, report = fit_model(spec, splits, config, target_precision, source=str(Path(data).resolve()))
    save_model(model, out)
    print_fit_report(report, model.classes)
    click.echo(f"\nwrote {out}")
    _write_json(json_out, {"model": out, "card": model.card()})


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the whole card as JSON.")
@friendly_errors
def info(model_path: str, as_json: bool) -> None:
    """Show a model file's card: architecture, classes, exits, thresholds."""
    from mxn.modelfile import read_card

    card = read_card(model_path)
    if as_json:
        click.echo(json.dumps(card, indent=2))
        return
    spec = card["spec"]
    click.echo(
        f"{model_path}: {spec['backbone']} x{spec['width']}, {spec['input_size']} px input, "
        f"{spec['head']} head, aggregation {'on' if spec['aggregation'] else 'off'}"
    )
    click.echo(f"classes ({len(card['classes'])}): {', '.join(card['classes'])}")
    thresholds = card.get("thresholds") or [None] * len(spec["exits"])
    for i, (pos, t) in enumerate(zip(spec["exits"], thresholds, strict=True)):
        click.echo(f"  exit {i}: after unit {pos}, threshold {_fmt(t, pct=False)}")
    test = (card.get("training") or {}).get("test")
    if test:
        click.echo("test accuracy per exit: " + ", ".join(_fmt(a) for a in test["exit_accuracy"]))


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--target-precision", type=float, default=0.99, show_default=True)
@click.option(
    "--confidence",
    type=float,
    default=0.95,
    show_default=True,
    help="How sure the precision margin must be (0.5: no margin).",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write the calibrated model here (default: in place).",
)
@friendly_errors
def calibrate(
    model_path: str, data: str, target_precision: float, confidence: float, out: str | None
) -> None:
    """Fit per-exit confidence thresholds on held-out images in DATA.

    DATA is a class-per-folder directory with the model's class names
    (a calibration/ sub-folder is used when present).
    """
    from mxn.calibration import calibrate_thresholds
    from mxn.modelfile import load_model, save_model

    model = load_model(model_path)
    images = _labelled_images(data, model, prefer="calibration")
    outputs = model.engine().all_exits(images.images).outputs
    cal = calibrate_thresholds(outputs, images.labels, target_precision, confidence)
    model.thresholds, model.calibration = cal.thresholds, cal.to_dict()
    save_model(model, out or model_path)
    rows = [
        [i, _fmt(e.threshold, pct=False), _fmt(e.precision), _fmt(e.coverage), e.reached]
        for i, e in enumerate(cal.exits)
    ]
    print_table(["exit", "threshold", "precision", "coverage", "reached"], rows)
    click.echo(
        f"overall: precision {_fmt(cal.precision)}, coverage {_fmt(cal.coverage)}; wrote {out or model_path}"
    )


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the figures as JSON.")
@friendly_errors
def evaluate(model_path: str, data: str, json_out: str | None) -> None:
    """Per-exit accuracy and early-exit results on labelled images in DATA."""
    from mxn.fit import evaluate as evaluate_model
    from mxn.modelfile import load_model

    model = load_model(model_path)
    images = _labelled_images(data, model, prefer="test")
    ev = evaluate_model(model, images)
    shares = ev.early_exit_share or [None] * len(ev.exit_accuracy)
    print_table(
        ["exit", "accuracy", "share exiting"],
        [[i, _fmt(a), _fmt(s)] for i, (a, s) in enumerate(zip(ev.exit_accuracy, shares, strict=True))],
    )
    if ev.early_exit_accuracy is not None:
        click.echo(
            f"early exit: accuracy {_fmt(ev.early_exit_accuracy)}, undecided {_fmt(ev.undecided_share)}"
        )
    _write_json(json_out, ev.to_dict())


@main.command()
@click.option("--out", "-o", default="out/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--epochs", type=int, default=20, show_default=True)
@click.option("--target-precision", type=float, default=0.95, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@friendly_errors
def demo(out: str, epochs: int, target_precision: float, seed: int) -> None:
    """A short end-to-end run: train a tiny 5-exit MXN and show what each exit does.

    Uses scikit-learn's bundled handwritten digits (no download), trains a
    ResNet-18-style MXN with focal loss, calibrates per-exit thresholds on
    held-out digits, evaluates every exit and the early-exit cascade on test
    digits, times all-exits against early-exit inference, and saves the model.
    """
    import time

    import numpy as np

    from mxn.fit import fit_model
    from mxn.modelfile import save_model
    from mxn.sample_data import digits
    from mxn.spec import NetworkSpec
    from mxn.training import TrainConfig

    click.echo("data: scikit-learn's handwritten digits (1,797 images, 10 classes), tinted, 32x32")
    data = digits(size=32, seed=seed)
    spec = NetworkSpec(input_size=32, width=0.25)
    config = TrainConfig(
        loss="focal", optimizer="adam", learning_rate=0.003, epochs=epochs, flip=False, seed=seed
    )
    click.echo(
        f"model: ResNet-18 MXN, width x{spec.width}, exits after blocks {list(spec.exits or ())}, "
        "aggregation on, focal loss"
    )
    model, report = fit_model(spec, {"all": data}, config, target_precision, source="sklearn digits")
    print_fit_report(report, model.classes)

    engine = model.engine(batch_size=64)
    images = np.resize(data.images, (1024, *data.images.shape[1:]))
    thresholds = model.thresholds or [None] * engine.num_exits
    runs = {
        "all exits (prefix batching)": lambda: engine.all_exits(images),
        "early exit (compacted batches)": lambda: engine.early_exit(images, thresholds),
    }
    click.echo(f"\ninference on {len(images)} images, batch 64:")
    for name, run in runs.items():
        run()  # warm-up: compiles the graphs
        start = time.perf_counter()
        run()
        click.echo(f"  {name:32s} {1000 * (time.perf_counter() - start):7.0f} ms")
    path = save_model(model, Path(out) / "digits.mxn")
    click.echo(f"\nwrote {path}  (inspect it with: mxn info {path})")


@main.group()
def world() -> None:
    """The synthetic traffic world: camera presets, clips with truth, training crops."""


@world.command("presets")
def world_presets() -> None:
    """List the camera presets and the classes each one shows."""
    from mxn.world.presets import PRESETS

    for preset in PRESETS.values():
        click.echo(f"{preset.name:11s} {preset.description}")
        click.echo(f"{'':11s} classes: {', '.join(preset.classes)}")


@world.command("video")
@click.option(
    "--preset", "-p", default="downtown", show_default=True, help="Camera preset (mxn world presets)."
)
@click.option("--seconds", type=float, default=60.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", default="640x360", show_default=True, help="Frame size WIDTHxHEIGHT.")
@click.option("--fps", type=float, default=30.0, show_default=True)
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Video to write (.mp4).")
@friendly_errors
def world_video(preset: str, seconds: float, seed: int, size: str, fps: float, out: str) -> None:
    """Render a traffic clip and its per-frame truth (NAME.truth.jsonl beside it).

    Example: mxn world video --preset highway --seconds 600 -o cams/highway.mp4
    """
    from mxn.world.video import render_clip

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError as err:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, got {size!r}", param_hint="--size") from err
    clip = render_clip(out, preset, seconds, seed=seed, size=(width, height), fps=fps)
    realtime = clip.render_fps / fps
    click.echo(
        f"wrote {clip.video} and {clip.truth}: {clip.frames} frames in {clip.seconds:.1f} s "
        f"({clip.render_fps:.0f} frames/s, {realtime:.1f}x real time)"
    )


@world.command("crops")
@click.option(
    "--out", "-o", required=True, type=click.Path(file_okay=False), help="Data-set folder to write."
)
@click.option("--size", type=int, default=64, show_default=True, help="Crop side in pixels.")
@click.option(
    "--seconds", type=float, default=None, help="Simulated seconds per preset for train (others: 30%)."
)
@click.option("--presets", default=None, help="Comma-separated presets (default: all).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--source",
    type=click.Choice(["truth", "blobs"]),
    default="truth",
    show_default=True,
    help="Boxes from the world's truth (jittered), or the background-subtraction blobs ingest finds.",
)
@friendly_errors
def world_crops(
    out: str, size: int, seconds: float | None, presets: str | None, seed: int, source: str
) -> None:
    """Cut a class-per-folder crops data set (train/val/calibration/test) from rendered worlds."""
    from mxn.world.crops import CropConfig, build_crops

    options: dict = {"size": size, "source": source}
    if seconds is not None:
        options["seconds"] = {"train": seconds, "val": 0.2 * seconds, "calibration": 0.3 * seconds,
                              "test": 0.3 * seconds}  # fmt: skip
    if presets:
        options["presets"] = tuple(p.strip() for p in presets.split(","))
    config = CropConfig(**options)
    manifest = build_crops(out, config, seed=seed)
    rows = [
        [c, *(manifest["counts"].get(s, {}).get(c, 0) for s in manifest["counts"])]
        for c in manifest["classes"]
    ]
    print_table(["class", *manifest["counts"]], rows)
    click.echo(f"wrote {out}/ (manifest.json lists counts, seeds and settings)")
    from mxn.defaults import MODEL_DIR

    if (
        "test" in manifest["counts"]
        and (MODEL_DIR / "ingest.mxn").exists()
        and (MODEL_DIR / "gt.mxn").exists()
    ):
        _print_difficulty(out)


@main.group()
def models() -> None:
    """The default models that ship with mxn (trained on the traffic world)."""


@models.command("list")
@friendly_errors
def models_list() -> None:
    """Show each default model, its file and its test accuracy per exit."""
    from mxn.defaults import DEFAULT_MODELS, MODEL_DIR
    from mxn.modelfile import read_card

    for name, what in DEFAULT_MODELS.items():
        path = MODEL_DIR / f"{name}.mxn"
        if not path.exists():
            click.echo(f"{name:7s} {what}\n        MISSING: {path} (scripts/build_default_models.sh)")
            continue
        card = read_card(path)
        spec, test = card["spec"], (card.get("training") or {}).get("test") or {}
        accuracy = ", ".join(_fmt(a) for a in test.get("exit_accuracy", []))
        click.echo(f"{name:7s} {what}")
        click.echo(f"        {path} ({spec['backbone']} x{spec['width']}, {spec['input_size']} px, "
                   f"exits {spec['exits']}); test accuracy per exit: {accuracy}")  # fmt: skip


@models.command("check")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@friendly_errors
def models_check(data: str) -> None:
    """Check the world is hard enough: the cheap first exit vs the ground-truth CNN on DATA/test."""
    _print_difficulty(data)


def _print_difficulty(data: str) -> None:
    from mxn.defaults import FIRST_EXIT_RANGE, GT_MINIMUM, difficulty

    d = difficulty(data)
    low, high = FIRST_EXIT_RANGE
    click.echo(
        f"on {d['items']} test crops: cheap first exit top-1 {_fmt(d['first_exit'])} "
        f"(target {100 * low:.0f}-{100 * high:.0f}%: {'ok' if d['first_exit_in_range'] else 'MISSED'}), "
        f"ground-truth CNN top-1 {_fmt(d['gt'])} "
        f"(target >= {100 * GT_MINIMUM:.0f}%: {'ok' if d['gt_high_enough'] else 'MISSED'})"
    )


def _labelled_images(data: str, model, prefer: str):
    """Images from DATA (or its ``prefer`` split) with the model's class numbering."""
    from mxn.images import load_image_folder

    root = Path(data) / prefer if (Path(data) / prefer).is_dir() else Path(data)
    return load_image_folder(root, model.spec.input_size, classes=model.classes)


# Subcommands that live in their own modules register themselves on ``main``.
from mxn import cli_faces, cli_ingest, cli_query  # noqa: E402, F401

if __name__ == "__main__":
    # Run as a script this file is the module ``__main__``, a second copy of
    # ``mxn.cli``; the subcommands above registered on the real one.
    from mxn.cli import main as registered_main

    sys.exit(registered_main())
