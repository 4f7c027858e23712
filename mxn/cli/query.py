"""``mxn query`` and ``mxn tune query``: label queries and their thresholds (a thin layer over query/).

The two commands share ``--gt``, ``--qmodel`` and ``--index``, each with the
default of its own API function (:func:`mxn.api.query`, :func:`mxn.api.tune_query`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import click

from mxn import api
from mxn.api import parse_time as parse_time  # the one parser of --from / --to (also mxn.api's start / end)
from mxn.query.settings import DEFAULT_INDEX_RECALL_SHARE, INDEX_MODES, MODES

from .common import db_option, friendly_errors, job_option, print_table, quiet_option, warn, write_json_file

EXAMPLES_QUERY = """
Examples:

  mxn query bus --html bus.html                  # every video in mxn.db, MXN-gated; a web page too

  mxn query car --video downtown.mp4 --from 0:30 --to 1:15 --out cars.csv --sheet cars.png

  mxn query bus --mode focus                     # the GT-CNN on every candidate (Focus)

  mxn query bus --mode all                       # no index: the GT-CNN on every stored object

  mxn query bus --thresholds query-thresholds.json   # thresholds from `mxn tune query`

A repeated query answers from cached verdicts and runs no CNN (--no-cache to pay again).
With a gt-all index of the same videos (mxn ingest --mode gt-all), the summary gives
the answer's precision and recall against it.
"""

EXAMPLES_TUNE = """
Examples:

  mxn tune query --out query-thresholds.json --plot query-tradeoff.png

  mxn tune query --target-precision 0.995 --target-recall 0.99 --db postgresql+psycopg://me@host/traffic

  mxn tune query --db sqlite:///cam1.db --also-db sqlite:///cam2.db   # pool two cameras' candidates

A camera whose calibration clip holds few candidates of a label (a quiet road's buses) cannot
show 99% for them alone: tune on every camera's candidates together (one index of all the
calibration clips, or --also-db), and each label's thresholds see them all.
"""


def _models(option: Callable) -> Callable:
    """``--gt`` and ``--qmodel`` (the ground-truth CNN, the query MXN) by ``option``, as one decorator."""
    gt = option("--gt", type=click.Path(dir_okay=False), help="Ground-truth CNN (default: bundled).")
    qmodel = option(
        "--qmodel", type=click.Path(dir_okay=False), help="Query MXN (default: the bundled focal one)."
    )
    return lambda command: gt(qmodel(command))


def _index(option: Callable) -> Callable:
    """``--index``, made by ``option``."""
    return option(
        "--index",
        type=click.Choice(INDEX_MODES),
        help="Which ingest's index to use (default: mxn when there is one).",
    )


#: Options whose defaults are those of :func:`mxn.api.query` and :func:`mxn.api.tune_query`.
option = partial(job_option, api.query)
tune_option = partial(job_option, api.tune_query)


@click.command(epilog=EXAMPLES_QUERY)
@click.argument("label")
@option("--video", show_default=True, help="Video name (or id, or hash prefix), or all.")
@option("--from", param="start", help="Start of the time range (seconds or [h:]mm:ss).")
@option("--to", param="end", help="End of the time range.")
@db_option()
@_models(option)
@option(
    "--thresholds",
    type=click.Path(dir_okay=False),
    help="Thresholds file from `mxn tune query` (default: the query model's calibrated ones).",
)
@option("--mode", type=click.Choice(MODES), show_default=True)
@_index(option)
@option("--out", type=click.Path(dir_okay=False), help="Write the answer (.json or .csv).")
@option("--sheet", type=click.Path(dir_okay=False), help="Write a contact sheet (.png).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write cached verdicts.")
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False), help="Write the summary and answer as JSON."
)
@option("--html", type=click.Path(dir_okay=False), help="Write an HTML report of the answer.")
@quiet_option()
@friendly_errors
def query(
    label: str,
    out: str | None,
    sheet: str | None,
    html: str | None,
    no_cache: bool,
    quiet: bool,
    json_out: str | None,
    **options: Any,
) -> None:
    """Find the frames that show LABEL: candidates from the index, decided by MXN exits or the GT-CNN."""
    result = api.query(
        label, out=out, sheet=sheet, html=html, cache=not no_cache, progress=not quiet, log=warn, **options
    )
    print_summary(result)
    for path in (out, sheet, html):
        if path:
            click.echo(f"wrote {Path(path)}")
    write_json_file(json_out, result.to_dict())


def _span(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def print_summary(result) -> None:
    """The one-screen summary of a query."""
    s = result.stats
    where = (
        f"from {_span(result.start)} to {_span(result.end)}" if (result.start or result.end) else "all times"
    )
    click.echo(f"{result.label!r} ({result.mode} mode, {result.index_mode} index, {where})")
    if result.mode == "all":
        click.echo(f"  objects checked by the GT-CNN: {s.objects_checked}, showing the label: {s.accepted}")
    else:
        exits = ", ".join(f"exit {k}: {v}" for k, v in sorted(s.decided_per_exit.items())) or "none"
        click.echo(f"  candidate clusters: {s.candidates}; accepted {s.accepted}, rejected {s.rejected}")
        click.echo(
            f"  rejected by the index score: {s.decided_by_index}; decided by MXN exits: {exits}; "
            f"by the GT-CNN: {s.gt_decided}"
        )
        miss = "-" if s.miss_rate is None else f"{100 * s.miss_rate:.1f}%"
        click.echo(
            f"  miss rate {miss}; CNN calls now: GT-CNN {s.gt_calls}, MXN {s.mxn_calls}; cached {s.cached}"
        )
    click.echo(f"  {s.seconds:.2f} s ({s.model_seconds:.2f} s in CNNs)")
    if result.accuracy:
        a = result.accuracy
        click.echo(
            f"  against the gt-all index: precision {100 * a['precision']:.1f}%, "
            f"recall {100 * a['recall']:.1f}% "
            f"({a['correct_frames']} of {a['answer_frames']} frames right, {a['truth_frames']} true)"
        )
    if not result.videos:
        click.echo("  no frames show it")
        return
    rows = []
    for v in result.videos:
        segments = v.segments
        shown = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in segments[:4]) + (" ..." if len(segments) > 4 else "")
        rows.append([v.name, len(v.frames), len(segments), shown])
    print_table(["video", "frames", "segments", "seconds"], rows)


@click.command("query", epilog=EXAMPLES_TUNE)
@db_option()
@tune_option(
    "--also-db",
    param="also",
    multiple=True,
    metavar="URL",
    help="Pool the candidates of this index too (repeatable): other cameras' calibration clips.",
)
@_models(tune_option)
@_index(tune_option)
@tune_option("--target-precision", type=float, show_default=True)
@tune_option("--target-recall", type=float, show_default=True, help="Bounds the rejections.")
@tune_option("--confidence", type=float, show_default=True, help="Of the Wilson margin.")
@tune_option("--holdout", type=float, show_default=True, help="Share of candidates held out.")
@tune_option("--seed", type=int, show_default=True)
@click.option(
    "--no-reject", is_flag=True, help="Exits only accept; every other candidate goes to the GT-CNN."
)
@tune_option(
    "--per-label/--shared",
    show_default=True,
    help="Fit each label's thresholds on its own candidates, or one set for every label.",
)
@tune_option(
    "--pooled/--per-exit",
    param="pooled_precision",
    show_default=True,
    help="Target precision of all the exits' accepts together, or of every exit alone (the paper's).",
)
@tune_option(
    "--index-stage/--no-index-stage",
    show_default=True,
    help="Let the index's stored ingest score reject candidates first, for free.",
)
@tune_option(
    "--index-share",
    type=click.FloatRange(0, 1),
    help="Share of the allowed recall loss the index stage may spend "
    f"[default: {DEFAULT_INDEX_RECALL_SHARE:g}, the tuner's].",
)
@tune_option(
    "--out",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Thresholds file to write (for mxn query --thresholds).",
)
@tune_option("--plot", type=click.Path(dir_okay=False), help="Draw the trade-off curve (.png).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write every figure as JSON.")
@quiet_option()
@friendly_errors
def tune_query(
    out: str, plot: str | None, no_reject: bool, quiet: bool, json_out: str | None, **options: Any
) -> None:
    """Search per-exit query thresholds on the index's own candidates for a target precision."""
    result = api.tune_query(out=out, plot=plot, reject=not no_reject, progress=not quiet, **options)
    print_tuning(result)
    for path in (out, plot):
        if path:
            click.echo(f"wrote {Path(path)}")
    write_json_file(json_out, result.to_dict())


def print_ceiling(result) -> None:
    """What the index lets any answer reach against its gt-all reference, and what to do where it is short."""
    if not result.index_ceiling:
        return
    click.echo(
        "\nindex ceiling (Focus's answer, the GT-CNN on every candidate, against the gt-all index: "
        "no thresholds do better, and theirs add to its losses):"
    )
    print_table(
        ["label", "precision", "recall", "truth frames"],
        [[label, _pct(c["precision"]), _pct(c["recall"]), c["truth_frames"]]
         for label, c in result.index_ceiling.items()],
    )  # fmt: skip
    t, short = result.thresholds, result.ceiling_misses()
    if short:
        click.echo(
            f"below the targets ({t.target_precision} / {t.target_recall}) before any threshold: "
            + ", ".join(sorted(short))
            + ". There the index lost objects or mixed clusters; re-ingest with a larger --topk or more "
            "--exits (or a lower --cluster-threshold) to raise it."
        )
    click.echo(
        "An answer's precision and recall are about these times the thresholds' (held out above): "
        "for answers at the targets, tune stricter than them (e.g. --target-precision 0.995 "
        "--target-recall 0.995)."
    )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


_NO_SAMPLES = {"candidates": 0, "precision": 1.0, "recall": 1.0, "gt_call_rate": 0.0}


def print_tuning(result) -> None:
    t, held = result.thresholds, result.held_out
    click.echo(
        f"{held['candidates']} held-out candidates ({held['positives']} the GT-CNN calls positive), "
        f"target precision {t.target_precision}, recall {t.target_recall}"
    )
    rows = [
        [i, _num(a), _num(r), d]
        for i, (a, r, d) in enumerate(zip(t.accept, t.reject, held["decided_per_exit"], strict=True))
    ]
    print_table(["exit", "accept p >=", "reject p <=", "decided (held out)"], rows)
    if held.get("decided_by_index"):
        click.echo(
            f"index stage: {held['decided_by_index']} held-out candidates rejected by their stored "
            f"ingest score (shared: score <= {_num(t.index_reject)}; scorer {t.index_scorer})"
        )
    if t.per_label:
        click.echo("\nper label (own thresholds, accept / reject per exit; held out):")
        print_table(
            ["label", "accept", "reject", "candidates", "precision", "recall", "GT-CNN calls"],
            [
                [label, " ".join(map(_num, own.accept)), " ".join(map(_num, own.reject)), f["candidates"],
                 _pct(f["precision"]), _pct(f["recall"]), f"{100 * f['gt_call_rate']:.1f}%"]
                for label, own in sorted(t.per_label.items())
                for f in [held["per_label"].get(label, _NO_SAMPLES)]
            ],
        )  # fmt: skip
    click.echo(
        f"held out: precision {100 * held['precision']:.2f}%, recall {100 * held['recall']:.2f}%, "
        f"GT-CNN calls {100 * held['gt_call_rate']:.1f}% of candidates "
        f"({held['false_accepts']} false accepts, {held['false_rejects']} false rejects)"
    )
    print_ceiling(result)
    click.echo("\ntrade-off (held out):")
    print_table(
        ["target precision", "precision", "recall", "GT-CNN calls"],
        [
            [c["target_precision"], f"{100 * c['precision']:.2f}%", f"{100 * c['recall']:.2f}%",
             f"{100 * c['gt_call_rate']:.1f}%"]
            for c in result.curve
        ],
    )  # fmt: skip
