"""Commands that make and inspect models: `train images`, `info`, `calibrate`, `evaluate`, `models`."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any, get_args

import click

from mxn import api
from mxn.spec import Backbone, Stem
from mxn.train_config import CLASSIFICATION_LOSSES, OPTIMIZERS

from .common import fmt, friendly_errors, job_option, print_fit_report, print_table, write_json_file

#: Options whose defaults are those of :func:`mxn.api.train` and :func:`mxn.api.calibrate`.
option = partial(job_option, api.train)
calibrate_option = partial(job_option, api.calibrate)

EXAMPLES_TRAIN = """
Examples:

  mxn train crops/ --out models/ingest.mxn --width 0.25 --input-size 64

  mxn train crops/ --out models/query.mxn --loss focal --gamma 2 --epochs 40

  mxn train blobs/ --out models/gt128.mxn --width 0.5 --exits 8 --input-size 128 --init models/gt.mxn

  mxn train blobs/ --out models/query.mxn --loss focal --teacher models/gt128.mxn
"""

EXAMPLES_INFO = """
Examples:

  mxn info models/query.mxn

  mxn info models/query.mxn --json > card.json
"""

EXAMPLES_CALIBRATE = """
Examples:

  mxn calibrate models/query.mxn crops/ --target-precision 0.99

  mxn calibrate models/query.mxn crops/ -o query-95.mxn --target-precision 0.95

  mxn calibrate models/query.mxn crops/ --json calibration.json
"""

EXAMPLES_EVALUATE = """
Examples:

  mxn evaluate models/ingest.mxn crops/       # crops/test/ when there is one

  mxn evaluate models/query.mxn crops/ --json figures.json
"""
EXAMPLES_MODELS = """
Examples:

  mxn models list

  mxn models check data/world-crops
"""

EXAMPLES_MODELS_LIST = """
Examples:

  mxn models list

  mxn info mxn/default_models/query.mxn     # one model's whole card
"""

EXAMPLES_MODELS_CHECK = """
Examples:

  mxn models check data/world-crops

  mxn models check data/world-crops --json difficulty.json
"""


@click.command("images", epilog=EXAMPLES_TRAIN)
@click.argument("data", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out", "-o", required=True, type=click.Path(dir_okay=False), help="Model file to write (.mxn)."
)
@option("--backbone", type=click.Choice(get_args(Backbone)), show_default=True)
@option("--width", type=float, show_default=True, help="Width multiplier.")
@option("--input-size", type=int, show_default=True, help="Input side in pixels.")
@option("--exits", help="Exit positions, e.g. 1,2,4,6,8 (default: the backbone's).")
@option("--stem", type=click.Choice(get_args(Stem)), show_default=True)
@option("--aggregation/--no-aggregation", show_default=True, help="Feature aggregation blocks.")
@option("--loss", type=click.Choice(CLASSIFICATION_LOSSES), show_default=True)
@option("--gamma", type=float, show_default=True, help="Focal loss gamma.")
@option("--exit-weights", help="Per-exit loss weights, e.g. 1,1,1,1,1.")
@option("--epochs", type=int, show_default=True, help="Most epochs (early stopping may end sooner).")
@option("--batch-size", type=int, show_default=True)
@option("--optimizer", type=click.Choice(OPTIMIZERS), show_default=True)
@option("--lr", type=float, show_default=True, help="Initial learning rate.")
@click.option("--no-augment", is_flag=True, help="Train without augmentation.")
@option("--seed", type=int, show_default=True)
@option(
    "--target-precision", type=float, show_default=True, help="Precision each exit's threshold must reach."
)
@option(
    "--init",
    type=click.Path(dir_okay=False),
    help="Start from this model's weights (same architecture and classes; any input size).",
)
@option(
    "--teacher",
    type=click.Path(dir_okay=False),
    help="Label every image with this model's top-1 answer (learn to agree with a ground-truth CNN).",
)
@option(
    "--soft-teacher",
    is_flag=True,
    help="Learn the teacher's probabilities, not only its top-1 (distillation; needs --teacher).",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the report as JSON.")
@friendly_errors
def train_images(
    data: tuple[str, ...], out: str, no_augment: bool, json_out: str | None, **options: Any
) -> None:
    """Train a multi-exit network on a class-per-folder image directory.

    DATA holds one folder per class (DATA/car/*.jpg, DATA/bus/*.jpg, ...), or
    train/ val/ calibration/ test/ folders that each hold the class folders.
    Several DATA folders are merged split by split. Missing splits are carved
    from the training images. Thresholds are
    calibrated on held-out images and stored in the model file.
    """
    trained = api.train(data, out, augment=not no_augment, log=click.echo, **options)
    print_fit_report(trained.report, trained.model.classes)
    click.echo(f"\nwrote {trained.path}")
    write_json_file(json_out, trained.to_dict())


@click.command(epilog=EXAMPLES_INFO)
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the whole card as JSON.")
@friendly_errors
def info(model_path: str, as_json: bool) -> None:
    """Show a model file's card: architecture, classes, exits, thresholds."""
    from mxn.card import read_card

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
        click.echo(f"  exit {i}: after unit {pos}, threshold {fmt(t, pct=False)}")
    test = (card.get("training") or {}).get("test")
    if test:
        click.echo("test accuracy per exit: " + ", ".join(fmt(a) for a in test["exit_accuracy"]))


@click.command(epilog=EXAMPLES_CALIBRATE)
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@calibrate_option("--target-precision", type=float, show_default=True)
@calibrate_option(
    "--confidence",
    type=float,
    show_default=True,
    help="How sure the precision margin must be (0.5: no margin).",
)
@calibrate_option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write the calibrated model here (default: in place).",
)
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False), help="Write the thresholds and figures as JSON."
)
@friendly_errors
def calibrate(
    model_path: str,
    data: str,
    target_precision: float,
    confidence: float,
    out: str | None,
    json_out: str | None,
) -> None:
    """Fit per-exit confidence thresholds on held-out images in DATA.

    DATA is a class-per-folder directory with the model's class names
    (a calibration/ sub-folder is used when present).
    """
    cal = api.calibrate(model_path, data, target_precision, confidence, out)
    rows = [
        [i, fmt(e.threshold, pct=False), fmt(e.precision), fmt(e.coverage), e.reached]
        for i, e in enumerate(cal.exits)
    ]
    print_table(["exit", "threshold", "precision", "coverage", "reached"], rows)
    click.echo(
        f"overall: precision {fmt(cal.precision)}, coverage {fmt(cal.coverage)}; wrote {out or model_path}"
    )
    write_json_file(json_out, {"model": out or model_path, **cal.to_dict()})


@click.command(epilog=EXAMPLES_EVALUATE)
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the figures as JSON.")
@friendly_errors
def evaluate(model_path: str, data: str, json_out: str | None) -> None:
    """Per-exit accuracy and early-exit results on labelled images in DATA."""
    ev = api.evaluate(model_path, data)
    shares = ev.early_exit_share or [None] * len(ev.exit_accuracy)
    print_table(
        ["exit", "accuracy", "share exiting"],
        [[i, fmt(a), fmt(s)] for i, (a, s) in enumerate(zip(ev.exit_accuracy, shares, strict=True))],
    )
    if ev.early_exit_accuracy is not None:
        click.echo(f"early exit: accuracy {fmt(ev.early_exit_accuracy)}, undecided {fmt(ev.undecided_share)}")
    write_json_file(json_out, ev.to_dict())


@click.group(epilog=EXAMPLES_MODELS)
def models() -> None:
    """The default models that ship with mxn (trained on the traffic world)."""


@models.command("list", epilog=EXAMPLES_MODELS_LIST)
@friendly_errors
def models_list() -> None:
    """Show each default model, its file and its test accuracy per exit."""
    from mxn.card import read_card
    from mxn.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()  # mxn.defaults loads the models' code
    from mxn.defaults import DEFAULT_MODELS, MODEL_DIR

    for name, what in DEFAULT_MODELS.items():
        path = MODEL_DIR / f"{name}.mxn"
        if not path.exists():
            click.echo(f"{name:7s} {what}\n        MISSING: {path} (scripts/build_default_models.sh)")
            continue
        card = read_card(path)
        spec, test = card["spec"], (card.get("training") or {}).get("test") or {}
        accuracy = ", ".join(fmt(a) for a in test.get("exit_accuracy", []))
        click.echo(f"{name:7s} {what}")
        click.echo(f"        {path} ({spec['backbone']} x{spec['width']}, {spec['input_size']} px, "
                   f"exits {spec['exits']}); test accuracy per exit: {accuracy}")  # fmt: skip


@models.command("check", epilog=EXAMPLES_MODELS_CHECK)
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the figures as JSON.")
@friendly_errors
def models_check(data: str, json_out: str | None) -> None:
    """Check the world is hard enough: the cheap first exit vs the ground-truth CNN on DATA/test."""
    write_json_file(json_out, print_difficulty(data))


def print_difficulty(data: str) -> dict[str, Any]:
    from mxn.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from mxn.defaults import FIRST_EXIT_RANGE, GT_MINIMUM, difficulty

    d = difficulty(data)
    low, high = FIRST_EXIT_RANGE
    click.echo(
        f"on {d['items']} test crops: cheap first exit top-1 {fmt(d['first_exit'])} "
        f"(target {100 * low:.0f}-{100 * high:.0f}%: {'ok' if d['first_exit_in_range'] else 'MISSED'}), "
        f"ground-truth CNN top-1 {fmt(d['gt'])} "
        f"(target >= {100 * GT_MINIMUM:.0f}%: {'ok' if d['gt_high_enough'] else 'MISSED'})"
    )
    manifest = Path(data) / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("config", {}).get("source") == "blobs":
        click.echo(
            "  (these are blobs: each is labelled by the truth object it overlaps most, so a blob that "
            "merges two objects or holds part of one has no single right answer; the targets are for "
            "truth crops)"
        )
    return d
