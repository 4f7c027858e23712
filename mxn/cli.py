"""The ``mxn`` command line: a thin layer over the library.

Each job command parses its options, calls its function in :mod:`mxn.api`
(the Python API, which has the same options) and prints what came back, so
the command line and Python scripts run the same code. Errors the user can
fix (a missing file, a corrupt model, a bad option) become one clear line and
a non-zero exit code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

import click

EXAMPLES_MAIN = """
Examples:

  mxn world video --preset downtown --seconds 60 -o cams/downtown.mp4

  mxn ingest cams/downtown.mp4 && mxn query bus --sheet buses.png

  mxn faces movies/short.mp4 --gallery cast/ --srt faces.srt

  mxn demo --quick  # the whole story in about a minute: open out/demo/index.html

Every command has --help with its own examples. The same jobs from Python:
mxn.api, one function per command, with the same options.
"""

EXAMPLES_TRAIN_GROUP = """
Examples:

  mxn train crops/ --out models/ingest.mxn      # = mxn train images crops/ ...

  mxn train faces movie.mp4 --out face.mxn      # a face MXN for a movie
"""

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

EXAMPLES_WORLD = """
Examples:

  mxn world presets

  mxn world video --preset downtown --seconds 60 -o cams/downtown.mp4

  mxn world crops --out data/world-crops --seconds 600 --size 128
"""

EXAMPLES_WORLD_PRESETS = """
Examples:

  mxn world presets

  mxn world video --preset night --seconds 30 -o cams/night.mp4
"""

EXAMPLES_WORLD_VIDEO = """
Examples:

  mxn world video --preset highway --seconds 600 -o cams/highway.mp4

  mxn world video -p night --seconds 20 --size 320x180 --fps 15 -o night.mp4

  mxn world video --seed 3 --seconds 10 -o cams/d3.mp4 --json clip.json
"""

EXAMPLES_WORLD_CROPS = """
Examples:

  mxn world crops --out data/world-crops --seconds 600 --size 128

  mxn world crops --out data/quick --seconds 60 --presets downtown --size 32

  mxn world crops --out data/blobs --source blobs --size 128 --every 10 --max-per-track 10
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


def _option_error(err) -> click.ClickException:
    """An :class:`mxn.api.OptionError` in the command line's words: its option names and exit codes.

    The API names its parameters; the command spells the same parameter as an
    option (``model`` is ``--model``, ``start`` is ``--from``), found here
    among the running command's parameters.
    """
    ctx = click.get_current_context(silent=True)
    params = ctx.command.params if ctx is not None else []

    def flag(name: str) -> str:
        for param in params:
            if name == param.name or name in (o.lstrip("-").replace("-", "_") for o in param.opts):
                if isinstance(param, click.Option):
                    return max(param.opts, key=len)
                return param.human_readable_name
        return "--" + name.replace("_", "-")

    if err.param:
        return click.BadParameter(err.text(flag), param_hint=flag(err.param))
    if err.usage:
        return click.UsageError(err.text(flag))
    return click.ClickException(err.text(flag))


#: The library's errors a user can fix, as (module, class): each says what is wrong and what to do.
USER_ERRORS = (
    ("mxn.card", "ModelFileError"),
    ("mxn.images", "DatasetError"),
    ("mxn.spec", "SpecError"),
    ("ingest.decode", "VideoError"),
    ("storage.store", "StoreError"),
    ("builtins", "ValueError"),
    ("builtins", "FileNotFoundError"),
)


def _is_user_error(err: BaseException) -> bool:
    """Whether ``err`` is one of :data:`USER_ERRORS`, importing nothing.

    An error of a class can only exist once its module is loaded, so the
    classes are looked up among the loaded modules: a command pays no import
    for error handling (``mxn info``, argument errors stay instant).
    """
    for module, name in USER_ERRORS:
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(err, getattr(loaded, name)):
            return True
    return False


def friendly_errors(fn: Callable) -> Callable:
    """Turn the library's user-facing errors into ``Error: ...`` and exit code 1.

    A bad argument the API names (:class:`mxn.api.OptionError`) is shown as
    the option it came from, with click's exit code 2 for misused options.
    """

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            api = sys.modules.get("mxn.api")
            if api is not None and isinstance(err, api.OptionError):
                raise _option_error(err) from err
            if _is_user_error(err):
                raise click.ClickException(str(err)) from err
            raise

    return wrapper


@contextmanager
def resumable() -> Iterator[None]:
    """Ctrl-C during a job that commits chunk by chunk: say how to resume, exit 130 (no traceback)."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo(
            "\ninterrupted: the committed chunks are kept; run the same command again to resume", err=True
        )
        raise SystemExit(130) from None


def warn(message: str) -> None:
    """One warning line on stderr, as it arises (the library's ``log`` / ``warn`` callbacks)."""
    click.echo(f"warning: {message}", err=True)


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


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120}, epilog=EXAMPLES_MAIN
)
@click.version_option(package_name="mxn")
def main() -> None:
    """mxn: video queries and face labelling with multi-exit networks.

    Multi-exit networks (MXNs) attach cheap classifiers part-way through a
    CNN, so easy inputs are answered early and only hard ones pay for the
    whole network.
    """
    # TensorFlow loads (quietly) when a job first needs it (mxn.api), not here:
    # --help, `mxn info` and argument errors answer at once.


class TrainGroup(click.Group):
    """``mxn train DATA ...`` is ``mxn train images DATA ...``; ``mxn train faces ...`` trains a face MXN."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["images", *args]
        return super().parse_args(ctx, args)


@main.group(cls=TrainGroup, epilog=EXAMPLES_TRAIN_GROUP)
def train() -> None:
    """Train a multi-exit network: `mxn train DATA` (= `mxn train images DATA`) or `mxn train faces`."""


@train.command("images", epilog=EXAMPLES_TRAIN)
@click.argument("data", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
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
@click.option(
    "--init",
    type=click.Path(dir_okay=False),
    help="Start from this model's weights (same architecture and classes; any input size).",
)
@click.option(
    "--teacher",
    type=click.Path(dir_okay=False),
    help="Label every image with this model's top-1 answer (learn to agree with a ground-truth CNN).",
)
@click.option(
    "--soft-teacher",
    is_flag=True,
    help="Learn the teacher's probabilities, not only its top-1 (distillation; needs --teacher).",
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the report as JSON.")
@friendly_errors
def train_images(
    data: tuple[str, ...],
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
    init: str | None,
    teacher: str | None,
    soft_teacher: bool,
    json_out: str | None,
) -> None:
    """Train a multi-exit network on a class-per-folder image directory.

    DATA holds one folder per class (DATA/car/*.jpg, DATA/bus/*.jpg, ...), or
    train/ val/ calibration/ test/ folders that each hold the class folders.
    Several DATA folders are merged split by split. Missing splits are carved
    from the training images. Thresholds are
    calibrated on held-out images and stored in the model file.
    """
    from mxn import api

    trained = api.train(
        data,
        out,
        backbone=backbone,
        width=width,
        input_size=input_size,
        exits=exits,
        stem=stem,
        aggregation=aggregation,
        loss=loss,
        gamma=gamma,
        exit_weights=exit_weights,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        augment=not no_augment,
        seed=seed,
        target_precision=target_precision,
        init=init,
        teacher=teacher,
        soft_teacher=soft_teacher,
        log=click.echo,
    )
    print_fit_report(trained.report, trained.model.classes)
    click.echo(f"\nwrote {trained.path}")
    _write_json(json_out, trained.to_dict())


@main.command(epilog=EXAMPLES_INFO)
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
        click.echo(f"  exit {i}: after unit {pos}, threshold {_fmt(t, pct=False)}")
    test = (card.get("training") or {}).get("test")
    if test:
        click.echo("test accuracy per exit: " + ", ".join(_fmt(a) for a in test["exit_accuracy"]))


@main.command(epilog=EXAMPLES_CALIBRATE)
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
    from mxn import api

    cal = api.calibrate(model_path, data, target_precision, confidence, out)
    rows = [
        [i, _fmt(e.threshold, pct=False), _fmt(e.precision), _fmt(e.coverage), e.reached]
        for i, e in enumerate(cal.exits)
    ]
    print_table(["exit", "threshold", "precision", "coverage", "reached"], rows)
    click.echo(
        f"overall: precision {_fmt(cal.precision)}, coverage {_fmt(cal.coverage)}; wrote {out or model_path}"
    )
    _write_json(json_out, {"model": out or model_path, **cal.to_dict()})


@main.command(epilog=EXAMPLES_EVALUATE)
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the figures as JSON.")
@friendly_errors
def evaluate(model_path: str, data: str, json_out: str | None) -> None:
    """Per-exit accuracy and early-exit results on labelled images in DATA."""
    from mxn import api

    ev = api.evaluate(model_path, data)
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


EXAMPLES_DEMO = """
Examples:

  mxn demo                  # the whole story into out/demo, a few minutes

  mxn demo --quick          # the reduced form CI runs, about a minute

  mxn demo --out /tmp/d --seconds 120 --seed 3 --json /tmp/d.json

Then open out/demo/index.html. Run again with the same options, it reuses what it made.
"""


@main.command(epilog=EXAMPLES_DEMO)
@click.option("--out", "-o", default="out/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--quick", is_flag=True, help="The reduced form: an 8 s clip at 320x180 and the tiny movie.")
@click.option("--seconds", type=float, default=None, help="Length of the traffic clip (default 60, quick 8).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the clip and the movie.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the summary here.")
@friendly_errors
def demo(out: str, quick: bool, seconds: float | None, seed: int, json_out: str | None) -> None:
    """The whole story on the bundled models, offline: ingest, label queries, faces, HTML reports.

    Renders a traffic clip, indexes it into SQLite (the mxn index and the
    gt-all reference), tunes the query thresholds, asks for a few labels,
    composes a movie of real faces and labels it, then writes one HTML
    report per job and OUT/index.html linking them (mxn.demo.run_demo).
    """
    from mxn.demo import DemoError, run_demo
    from mxn.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()

    try:
        summary = run_demo(out, quick=quick, seconds=seconds, seed=seed, echo=click.echo).to_dict()
    except DemoError as err:
        raise click.ClickException(str(err)) from err
    print_demo_summary(summary)
    _write_json(json_out, summary)


def print_demo_summary(data: dict[str, Any]) -> None:
    """The story in a few lines, then where every result is."""
    click.echo(f"\ndone in {data['seconds']:.0f} s")
    for r in data["ingest"]:
        when = "indexed before" if r["status"] == "skipped" else "indexed"
        click.echo(
            f"  {r['mode']} index: {r['objects']} objects, {r['clusters']} clusters "
            f"({when} in {r['seconds']:.1f} s)"
        )
    rows = [
        [
            q["label"],
            q["candidates"],
            q["decided_by_exits"],
            q["gt_calls"],
            _fmt(q["precision"]),
            _fmt(q["recall"]),
        ]
        for q in data["queries"]
    ]
    if rows:
        click.echo("")
        print_table(["label", "candidates", "decided by exits", "GT-CNN calls", "precision", "recall"], rows)
    faces = data.get("faces")
    if faces:
        click.echo(
            f"\nfaces: {faces['faces']} labelled, {len(faces['people'])} people, oracle calls "
            f"{faces['oracle_calls']} ({_fmt(faces['oracle_rate'])}), right vs the truth "
            f"{_fmt(faces['truth_accuracy'])}"
        )
    click.echo("")
    print_table(["result", "where"], list(data["files"].items()))


@main.group(epilog=EXAMPLES_WORLD)
def world() -> None:
    """The synthetic traffic world: camera presets, clips with truth, training crops."""


@world.command("presets", epilog=EXAMPLES_WORLD_PRESETS)
def world_presets() -> None:
    """List the camera presets and the classes each one shows."""
    from mxn.world.presets import PRESETS

    for preset in PRESETS.values():
        click.echo(f"{preset.name:11s} {preset.description}")
        click.echo(f"{'':11s} classes: {', '.join(preset.classes)}")


@world.command("video", epilog=EXAMPLES_WORLD_VIDEO)
@click.option(
    "--preset", "-p", default="downtown", show_default=True, help="Camera preset (mxn world presets)."
)
@click.option("--seconds", type=float, default=60.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", default="640x360", show_default=True, help="Frame size WIDTHxHEIGHT.")
@click.option("--fps", type=float, default=30.0, show_default=True)
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Video to write (.mp4).")
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False), help="Write the files, frames and speed as JSON."
)
@friendly_errors
def world_video(
    preset: str, seconds: float, seed: int, size: str, fps: float, out: str, json_out: str | None
) -> None:
    """Render a traffic clip and its per-frame truth (NAME.truth.jsonl beside it)."""
    from dataclasses import asdict

    from mxn import api

    clip = api.render_traffic_video(out, preset, seconds, seed=seed, size=size, fps=fps)
    realtime = clip.render_fps / fps
    click.echo(
        f"wrote {clip.video} and {clip.truth}: {clip.frames} frames in {clip.seconds:.1f} s "
        f"({clip.render_fps:.0f} frames/s, {realtime:.1f}x real time)"
    )
    _write_json(json_out, asdict(clip))


@world.command("crops", epilog=EXAMPLES_WORLD_CROPS)
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
@click.option("--every", type=int, default=15, show_default=True, help="Frames between two crops of a track.")
@click.option("--max-per-track", type=int, default=4, show_default=True, help="Crops per track at most.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the manifest as JSON.")
@friendly_errors
def world_crops(
    out: str,
    size: int,
    seconds: float | None,
    presets: str | None,
    seed: int,
    source: str,
    every: int,
    max_per_track: int,
    json_out: str | None,
) -> None:
    """Cut a class-per-folder crops data set (train/val/calibration/test) from rendered worlds."""
    from mxn import api

    manifest = api.render_crops(
        out, size=size, seconds=seconds, presets=presets, seed=seed, source=source, every=every,
        max_per_track=max_per_track,
    )  # fmt: skip
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
    _write_json(json_out, manifest)


@main.group(epilog=EXAMPLES_MODELS)
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
        accuracy = ", ".join(_fmt(a) for a in test.get("exit_accuracy", []))
        click.echo(f"{name:7s} {what}")
        click.echo(f"        {path} ({spec['backbone']} x{spec['width']}, {spec['input_size']} px, "
                   f"exits {spec['exits']}); test accuracy per exit: {accuracy}")  # fmt: skip


@models.command("check", epilog=EXAMPLES_MODELS_CHECK)
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the figures as JSON.")
@friendly_errors
def models_check(data: str, json_out: str | None) -> None:
    """Check the world is hard enough: the cheap first exit vs the ground-truth CNN on DATA/test."""
    _write_json(json_out, _print_difficulty(data))


def _print_difficulty(data: str) -> dict[str, Any]:
    from mxn.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from mxn.defaults import FIRST_EXIT_RANGE, GT_MINIMUM, difficulty

    d = difficulty(data)
    low, high = FIRST_EXIT_RANGE
    click.echo(
        f"on {d['items']} test crops: cheap first exit top-1 {_fmt(d['first_exit'])} "
        f"(target {100 * low:.0f}-{100 * high:.0f}%: {'ok' if d['first_exit_in_range'] else 'MISSED'}), "
        f"ground-truth CNN top-1 {_fmt(d['gt'])} "
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


# Subcommands that live in their own modules register themselves on ``main``.
from mxn import cli_faces, cli_ingest, cli_query  # noqa: E402, F401

if __name__ == "__main__":
    # Run as a script this file is the module ``__main__``, a second copy of
    # ``mxn.cli``; the subcommands above registered on the real one.
    from mxn.cli import main as registered_main

    sys.exit(registered_main())
