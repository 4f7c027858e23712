"""Draw the benchmark scripts' JSON results as PNG plots, one per benchmark.

Each JSON file is what a benchmark script writes with ``--json OUT``; its kind
is recognised from its keys (the scripts write no "format" field):

* ``bench_mxn``: measured speed-ups beside their MAC bounds, targets and the
  paper's numbers (scripts/bench_mxn.py).
* ``bench_ingest``: per preset, the median seconds of each ingest mode (focus,
  mxn, gt-all) stacked by stage, and the Dask workers' throughput when the
  run has it (scripts/bench_ingest.py).
* ``bench_query``: per preset, the summed seconds of each query mode on a log
  axis, with the precision / recall (minimum over labels) it reached
  (scripts/bench_query.py).
* ``bench_faces``: ms per face of each pipeline, and the share of faces each
  exit decided vs the oracle (scripts/bench_faces.py).
* ``bench_scale``: candidate lookup ms and insertion µs per object against
  the index's size, log-log (scripts/bench_scale.py).

A part a run did not measure (say ``--no-workers``) is left out of its plot.
Targets that only the scripts know (module constants such as
``TARGET_LOOKUP_MS``) are read from the scripts' source, without importing
them (they import TensorFlow). The PNG of a kind is ``bench_<kind>.png`` in
``--out``; with two files of one kind, each gets its file's name added.

Usage::

    python scripts/plot_benchmarks.py /tmp/bench_scale.json /tmp/bench_faces.json --out docs/img
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

SCRIPTS = Path(__file__).resolve().parent

#: One colour per mode or pipeline, the same in every plot.
COLORS = {
    "focus": "tab:orange",
    "mxn": "tab:blue",
    "mxn_card": "tab:cyan",
    "mxn_fallback": "tab:olive",
    "mxn_strict": "tab:brown",
    "gt-all": "tab:red",
    "all": "tab:red",
    "oracle": "tab:red",
    "mxn_last_exit_oracle": "tab:purple",
    "bound": "0.75",
    "target": "tab:green",
    "paper": "black",
}
#: bench_ingest's stages, in pipeline order, with the colour of each.
INGEST_STAGES = {
    "decode_s": ("decode", "#8c564b"),
    "extract_s": ("extract", "#bcbd22"),
    "model_s": ("model", "#1f77b4"),
    "cluster_s": ("cluster", "#9467bd"),
    "store_s": ("store", "#17becf"),
}
INGEST_MODES = ("focus", "mxn", "gt-all")
QUERY_MODES = ("focus", "mxn", "mxn_fallback", "mxn_strict", "all")
FACE_PIPELINES = {
    "oracle": "oracle on every face",
    "mxn": "mxn",
    "mxn_last_exit_oracle": "mxn, last-exit oracle",
}


#: Tick labels as plain numbers (0.2, 50, 300), not powers of ten.
PLAIN = FuncFormatter(lambda value, _: f"{value:g}")


class PlotError(Exception):
    """A JSON file that is not a benchmark result this script can draw."""


# -- shared helpers ------------------------------------------------------------------------------------


def new_figure(
    title: str,
    note: str,
    ncols: int = 1,
    width: float = 7.0,
    height: float = 4.2,
    ratios: Sequence[float] | None = None,
) -> tuple[Figure, list[Axes]]:
    """A figure on the Agg canvas (no pyplot, no global state) with ``ncols`` axes and a titled run note."""
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False, width_ratios=ratios)[0]
    fig.suptitle(f"{title}\n{note}" if note else title, fontsize=11)
    return fig, list(axes)


def style(ax: Axes, ylabel: str, title: str = "", xlabel: str = "", log: str = "") -> None:
    """The common look: labels, a light grid behind the data, log scales for the axes ``log`` names.

    Call it after the data is drawn: a log axis labels its ticks by the range it shows.
    """
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=10)
    if "x" in log:
        ax.set_xscale("log")
    if "y" in log:
        ax.set_yscale("log")
        low, high = ax.get_ylim()  # plain numbers (0.2, 50); the minor ticks too when under a decade shows
        ax.yaxis.set_major_formatter(PLAIN)
        ax.yaxis.set_minor_formatter(PLAIN if high / low < 10 else NullFormatter())
    ax.grid(True, which="major", alpha=0.3)
    ax.set_axisbelow(True)


def legend(ax: Axes, **kwargs: Any) -> None:
    """A small legend, or none when the axes have nothing labelled."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, framealpha=0.85, **kwargs)


def label_bars(ax: Axes, bars: BarContainer, texts: Sequence[str], **kwargs: Any) -> None:
    """Write ``texts`` above each bar (``kwargs`` go to ``bar_label``: ``rotation``, ``fontsize``)."""
    ax.bar_label(bars, labels=list(texts), padding=2, fontsize=kwargs.pop("fontsize", 8), **kwargs)


def grouped_x(groups: int, member: int, members: int, width: float) -> list[float]:
    """x of bar ``member`` (of ``members`` side by side, each ``width`` wide) in each of ``groups`` groups."""
    return [group + (member - (members - 1) / 2) * width for group in range(groups)]


def group_ticks(ax: Axes, centers: Sequence[float], names: Sequence[str]) -> None:
    """One x tick per group of bars, named."""
    ax.set_xticks(list(centers), list(names))


def run_note(quick: bool | None, cpus: int | None, extra: str = "") -> str:
    """What kind of run the numbers are from, for the subtitle."""
    parts = [{True: "--quick run", False: "full run", None: ""}[quick], f"{cpus} CPUs" if cpus else "", extra]
    return ", ".join(p for p in parts if p)


def config_note(data: Mapping[str, Any], extra: str = "") -> str:
    """:func:`run_note` from the ``config`` that bench_mxn, bench_ingest and bench_query write."""
    config = data.get("config", {})
    quick = config["mode"] == "quick" if "mode" in config else None
    return run_note(quick, config.get("cpu_count"), extra)


def new_label(ax: Axes, label: str) -> str | None:
    """``label`` for the first artist that carries it on ``ax``, None after (one legend entry each)."""
    return None if label in ax.get_legend_handles_labels()[1] else label


def fmt_x(value: float | None) -> str:
    """A speed-up as ``3.57x`` (``-`` when it could not be computed)."""
    return "-" if value is None else f"{value:.2f}x"


def script_constants(script: str, names: Sequence[str]) -> dict[str, float]:
    """The numeric module constants ``names`` of ``scripts/<script>``, read from its source, not imported.

    A constant the script no longer has (or a script that is not there) is
    left out: the plot then draws no target for it.
    """
    try:
        tree = ast.parse((SCRIPTS / script).read_text())
    except OSError:
        return {}
    found: dict[str, float] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if (
                name in names
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, float | int)
            ):
                found[name] = float(node.value.value)
    return found


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


# -- one function per benchmark ------------------------------------------------------------------------


class Speedup(NamedTuple):
    """One bench_mxn measurement: what it compares, the speed-up, and what it is held against."""

    name: str
    measured: float
    bound: float | None
    target: float | None
    paper: float | None


def plot_mxn(data: Mapping[str, Any], path: Path) -> Path:
    """bench_mxn: each measured speed-up beside its MAC bound, its target and the paper's number."""
    consts = script_constants("bench_mxn.py", ("TARGET_FRACTION_OF_BOUND", "TARGET_EARLY_EXIT_SPEEDUP"))
    fraction, paper = consts.get("TARGET_FRACTION_OF_BOUND"), data.get("paper", {})

    def of_bound(key: str, name: str) -> Speedup:
        bound = data[f"{key}_bound"]
        target = fraction * bound if fraction else None
        return Speedup(name, data[f"{key}_speedup"], bound, target, paper.get(f"{key}_speedup"))

    rows = [
        of_bound("prefix_batching", "prefix batching\n(5 exits vs 5 singles)"),
        Speedup("early exit\n(batch 64 vs batch 1)", data["early_exit_batch_speedup"], None,
                consts.get("TARGET_EARLY_EXIT_SPEEDUP"), None),
        of_bound("training", "training, per epoch\n(MXN vs 5 singles)"),
    ]  # fmt: skip
    fig, (ax,) = new_figure("bench_mxn: speed-ups of the multi-exit network", config_note(data))
    width = 0.36
    for x, row in enumerate(rows):
        left = x - width / 2 if row.bound is not None else x  # a bar without a bound beside it is centred
        bar = ax.bar(left, row.measured, width, color=COLORS["mxn"], label=new_label(ax, "measured"))
        label_bars(ax, bar, [fmt_x(row.measured)])
        if row.bound is not None:
            bar = ax.bar(
                x + width / 2, row.bound, width, color=COLORS["bound"], label=new_label(ax, "MAC bound")
            )
            label_bars(ax, bar, [fmt_x(row.bound)])
        if row.target is not None:
            ax.hlines(
                row.target,
                x - width,
                x + width,
                colors=COLORS["target"],
                linestyles="--",
                linewidth=2,
                label=new_label(ax, "target"),
            )
        if row.paper is not None:
            ax.plot([left], [row.paper], "D", color=COLORS["paper"], label=new_label(ax, "paper"))
    group_ticks(ax, range(len(rows)), [r.name for r in rows])
    style(ax, "speed-up (x)")
    ax.set_ylim(0, 1.18 * max(v for r in rows for v in r[1:] if v is not None))
    legend(ax, loc="upper right")
    return save(fig, path)


def _ingest_stages(ax: Axes, presets: Mapping[str, Any]) -> None:
    """Per preset, one stacked bar per mode: its median seconds per stage, plus what the stages leave out."""
    step = len(INGEST_MODES) + 1
    centers, below = [], ax.get_xaxis_transform()  # x in data, y in axes units: text under the axis
    for i, preset in enumerate(presets.values()):
        centers.append(i * step + (len(INGEST_MODES) - 1) / 2)
        for j, mode in enumerate(INGEST_MODES):
            median = preset["median"][mode]
            x, bottom = i * step + j, 0.0
            parts = [(label, color, median[key]) for key, (label, color) in INGEST_STAGES.items()]
            parts.append(("other", "0.85", max(median["seconds"] - sum(p[2] for p in parts), 0.0)))
            for label, color, seconds in parts:
                ax.bar(x, seconds, 0.8, bottom=bottom, color=color, label=new_label(ax, label))
                bottom += seconds
            ax.text(x, bottom, f"{median['seconds']:.2f}", ha="center", va="bottom", fontsize=7)
            ax.text(x, -0.01, mode, ha="center", va="top", fontsize=7, rotation=90, transform=below)
    group_ticks(ax, centers, list(presets))
    ax.tick_params(axis="x", length=0, pad=34)
    speedups = ", ".join(f"{n} {fmt_x(p.get('speedup_vs_focus'))}" for n, p in presets.items())
    style(ax, "median seconds per ingest", title=f"stages per mode (mxn vs focus: {speedups})")
    legend(ax, loc="upper left", ncols=3)


def _ingest_workers(ax: Axes, workers: Mapping[str, Any]) -> None:
    """The Dask workers check: frames per second of one process and of 1 and 2 workers."""
    names = list(workers["runs"])
    rates = [workers["runs"][n]["frames_per_s"] for n in names]
    colors = ["0.6" if name == "process" else COLORS["mxn"] for name in names]
    bars = ax.bar(range(len(names)), rates, 0.6, color=colors)
    label_bars(ax, bars, [f"{r:.0f}" for r in rates])
    group_ticks(ax, range(len(names)), [n.replace("_", " ") for n in names])
    title = f"workers ({workers.get('preset', '?')}): 2 vs 1 {fmt_x(workers.get('speedup_2_vs_1_workers'))}"
    style(ax, "frames / s", title=title)
    ax.set_ylim(0, 1.15 * max(rates))


def plot_ingest(data: Mapping[str, Any], path: Path) -> Path:
    """bench_ingest: seconds per stage of focus / mxn / gt-all per preset, and the workers' throughput."""
    workers = data.get("workers")
    has_workers = bool(workers and workers.get("runs"))
    fig, axes = new_figure(
        "bench_ingest: where the ingest time goes",
        config_note(data),
        ncols=2 if has_workers else 1,
        width=11.0 if has_workers else 8.0,
        height=4.8,
        ratios=[3, 1] if has_workers else None,
    )
    _ingest_stages(axes[0], data["presets"])
    if has_workers:
        _ingest_workers(axes[1], workers)
    return save(fig, path)


def plot_query(data: Mapping[str, Any], path: Path) -> Path:
    """bench_query: summed seconds per mode per preset (log axis), each bar with its precision / recall."""
    presets = data["presets"]
    modes = [m for m in QUERY_MODES if all(m in p["modes"] for p in presets.values())]
    fig, (ax,) = new_figure(
        "bench_query: label query latency per mode",
        config_note(data, "P / R: minimum over labels, against gt-all"),
        width=9.0,
        height=4.8,
    )
    width = 0.8 / len(modes)
    for j, mode in enumerate(modes):
        xs = grouped_x(len(presets), j, len(modes), width)
        runs = [p["modes"][mode] for p in presets.values()]
        bars = ax.bar(
            xs, [r["seconds"] for r in runs], width, color=COLORS[mode], label=mode.replace("_", " ")
        )
        texts = [f"P {r['precision_min']:.3f}\nR {r['recall_min']:.3f}" for r in runs]
        label_bars(ax, bars, texts, fontsize=6, rotation=90)
    group_ticks(ax, range(len(presets)), list(presets))
    ax.set_yscale("log")
    seconds = [p["modes"][m]["seconds"] for p in presets.values() for m in modes]
    ax.set_ylim(0.5 * min(seconds), 12 * max(seconds))  # room for the labels above the tallest bar
    style(ax, "seconds, summed over the preset's labels", log="y")
    legend(ax, loc="upper left", ncols=len(modes))
    return save(fig, path)


def _faces_latency(ax: Axes, data: Mapping[str, Any]) -> None:
    """ms per face of each pipeline, with its accuracy against the truth."""
    ms = data["ms_per_face"]
    names = [n for n in FACE_PIPELINES if n in ms]
    accuracy = {
        "oracle": "accuracy_oracle",
        "mxn": "accuracy_mxn",
        "mxn_last_exit_oracle": "accuracy_mxn_last_exit_oracle",
    }
    bars = ax.bar(range(len(names)), [ms[n] for n in names], 0.6, color=[COLORS[n] for n in names])
    texts = [
        f"{ms[n]:.2f} ms" + (f"\nacc {data[accuracy[n]]:.3f}" if accuracy[n] in data else "") for n in names
    ]
    label_bars(ax, bars, texts)
    group_ticks(ax, range(len(names)), [FACE_PIPELINES[n].replace(", ", ",\n") for n in names])
    target = script_constants("bench_faces.py", ("TARGET_SPEEDUP",)).get("TARGET_SPEEDUP")
    title = f"recognition: mxn {fmt_x(data.get('speedup_recognition'))} faster" + (
        f" (target {target:g}x)" if target else ""
    )
    style(ax, "ms per face", title=title)
    ax.set_ylim(0, 1.25 * max(ms[n] for n in names))


def _faces_exits(ax: Axes, data: Mapping[str, Any]) -> None:
    """Share of the faces each exit decided and the share left to the oracle; the last-exit variant beside."""
    variants = {"mxn": (data["hit_rate_per_exit"], data["oracle_rate"])}
    last = data.get("last_exit_oracle")
    if last and data.get("faces"):
        variants["mxn_last_exit_oracle"] = (last["hit_rate_per_exit"], last["oracle_calls"] / data["faces"])
    width = 0.8 / len(variants)
    for j, (name, (hits, oracle)) in enumerate(variants.items()):
        shares = [*hits, oracle]
        xs = grouped_x(len(shares), j, len(variants), width)
        bars = ax.bar(xs, [100 * s for s in shares], width, color=COLORS[name], label=FACE_PIPELINES[name])
        label_bars(ax, bars, [f"{100 * s:.0f}%" for s in shares], fontsize=7)
    group_ticks(ax, range(len(shares)), [*(f"exit {i}" for i in range(len(hits))), "oracle"])
    style(ax, "% of faces decided", title=f"who decided ({data.get('faces', '?')} faces)")
    ax.set_ylim(0, 110)
    legend(ax, loc="upper right")


def plot_faces(data: Mapping[str, Any], path: Path) -> Path:
    """bench_faces: ms per face per pipeline, and the share decided per exit vs by the oracle."""
    settings, machine = data.get("settings", {}), data.get("machine", {})
    fig, axes = new_figure(
        "bench_faces: face labelling, MXN vs the oracle on every face",
        run_note(settings.get("quick"), machine.get("cpus")),
        ncols=2,
        width=11.0,
    )
    _faces_latency(axes[0], data)
    _faces_exits(axes[1], data)
    return save(fig, path)


#: bench_scale's lookup scopes: (key prefix, legend name, marker, colour).
SCALE_SCOPES = (
    ("window", "20 s window", "o", "tab:blue"),
    ("video", "whole video", "s", "tab:orange"),
    ("all_videos", "every video", "^", "tab:purple"),
)


def _log_log(
    ax: Axes, objects: Sequence[int], series: Mapping[str, tuple[Sequence[float], dict[str, Any]]]
) -> None:
    """Lines of cost against objects: ``series`` maps a label to (values, keyword arguments of ``plot``)."""
    for label, (values, kwargs) in series.items():
        ax.plot(objects, values, label=label, **kwargs)


def plot_scale(data: Mapping[str, Any], path: Path) -> Path:
    """bench_scale: candidate lookup ms and insertion µs per object against objects, log-log."""
    steps, machine = data["steps"], data.get("machine", {})
    database = str(data.get("database", "")).split("+")[0].split(":")[0]  # "postgresql", "sqlite (...)"
    objects = [s["objects"] for s in steps]
    fig, (lookups, inserts) = new_figure(
        "bench_scale: the index at scale",
        run_note(data.get("quick"), machine.get("cpus"), database),
        ncols=2,
        width=11.0,
        height=4.6,
    )
    series: dict[str, tuple[list[float], dict[str, Any]]] = {}
    for key, name, marker, color in SCALE_SCOPES:
        line = {"marker": marker, "color": color}
        series[name] = ([s["lookup"][f"{key}_ms"] for s in steps], line)
        if all(f"{key}_crops_ms" in s["lookup"] for s in steps):  # older runs timed no crops
            series[f"{name}, with crops"] = (
                [s["lookup"][f"{key}_crops_ms"] for s in steps],
                line | {"ls": "--"},
            )
    _log_log(lookups, objects, series)
    target = script_constants("bench_scale.py", ("TARGET_LOOKUP_MS",)).get("TARGET_LOOKUP_MS")
    if target:
        lookups.axhline(target, color=COLORS["target"], linestyle=":", label=f"target {target:g} ms (window)")
    label = data.get("label", "?")
    style(lookups, "ms per lookup", title=f"candidate lookup of '{label}'", xlabel="objects", log="xy")
    legend(lookups, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=3)
    insert = {
        "median of the step's last commits": ([s["insert_per_object_us"] for s in steps], {"marker": "o"})
    }
    if all("insert_step_mean_us" in s for s in steps):
        insert["mean over the step"] = (
            [s["insert_step_mean_us"] for s in steps],
            {"marker": "s", "ls": "--"},
        )
    _log_log(inserts, objects, insert)
    style(inserts, "µs per object", title="insertion (commit_chunk)", xlabel="objects", log="xy")
    legend(inserts, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2)
    return save(fig, path)


# -- which benchmark a file is -------------------------------------------------------------------------


#: Per kind: the top-level keys that identify its JSON, and the function that draws it (first match wins).
KINDS: dict[str, tuple[frozenset[str], Callable[[Mapping[str, Any], Path], Path]]] = {
    "mxn": (frozenset({"prefix_batching_speedup", "early_exit_batch_speedup", "training_speedup"}), plot_mxn),
    "ingest": (frozenset({"presets", "memory"}), plot_ingest),  # "workers": newer runs only
    "query": (frozenset({"presets", "sweep"}), plot_query),
    "faces": (frozenset({"ms_per_face", "hit_rate_per_exit", "oracle_rate"}), plot_faces),
    "scale": (frozenset({"steps", "lookup_ms_at_1e6", "insert_per_object_us_at_1e6"}), plot_scale),
}


def load(path: Path) -> tuple[str, dict[str, Any]]:
    """The kind of benchmark ``path`` holds and its data; PlotError naming the file when it is none."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlotError(f"{path}: not a readable JSON file ({exc})") from None
    if isinstance(data, dict):
        for kind, (keys, _) in KINDS.items():
            if keys <= data.keys():
                return kind, data
    known = "; ".join(f"bench_{kind}.py ({', '.join(sorted(keys))})" for kind, (keys, _) in KINDS.items())
    raise PlotError(f"{path}: not the JSON of a known benchmark; the known ones and their keys: {known}")


def output_names(kinds: Sequence[str], paths: Sequence[Path]) -> list[str]:
    """``bench_<kind>.png``; where two inputs are of one kind, ``bench_<kind>_<file name>.png``.

    PlotError when two inputs would still write one PNG (files of one name in two folders).
    """
    count = Counter(kinds)
    names = [
        f"bench_{k}.png" if count[k] == 1 else f"bench_{k}_{p.stem.removeprefix(f'bench_{k}_')}.png"
        for k, p in zip(kinds, paths, strict=True)
    ]
    clashes = [n for n, c in Counter(names).items() if c > 1]
    if clashes:
        raise PlotError(f"two inputs would both be drawn as {clashes[0]}: give them different file names")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "json", nargs="+", type=Path, help="JSON files the benchmark scripts wrote with --json"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="write the PNGs here")
    args = parser.parse_args(argv)
    try:
        loaded = [load(path) for path in args.json]  # every file checked before anything is drawn
        names = output_names([kind for kind, _ in loaded], args.json)
        for path, name, (kind, data) in zip(args.json, names, loaded, strict=True):
            try:
                written = KINDS[kind][1](data, args.out / name)
            except (KeyError, TypeError, IndexError) as exc:
                raise PlotError(
                    f"{path}: a bench_{kind}.py result without a part it needs ({exc!r})"
                ) from exc
            print(f"{path} (bench_{kind}) -> {written}")
    except PlotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
