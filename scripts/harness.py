"""What every benchmark script shares: timing, the CPU-load watch, text tables, the command line, JSON.

The scripts measure on machines that may be shared, so each timed sample
notes how much CPU *other* processes took meanwhile (:class:`CpuWatch`), and
medians can keep to the undisturbed samples (:func:`quiet_indices`). Every
script takes ``--quick`` (a CI-sized run) and ``--json OUT`` (:func:`new_parser`),
starts from its quick or full preset with the command line's overrides
(:func:`choose_preset`), and writes its result with :func:`write_result`.

A script run as ``python scripts/bench_X.py`` has ``scripts/`` first on
``sys.path``, so ``import harness`` needs no path edits. Nothing here imports
TensorFlow: the store and fault benchmarks do not load it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mxn.jsonfile import write_json

#: A sample counts as undisturbed when other processes took at most this share of the machine's CPU.
QUIET_SHARE = 0.1
#: What a report adds when some timed samples were disturbed.
DISTURBED = " (those timings are disturbed: rerun on a quiet machine)"

T = TypeVar("T")


# -- the CPU other processes take -----------------------------------------------------------------------


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has been busy since boot (Linux), or ``None``."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuWatch:
    """Watches how much CPU *other* processes take while we measure.

    The timings assume the machine is ours; a share well above zero means
    someone else's work competed for the cores and the numbers are disturbed.
    """

    busy: float | None
    own: float
    wall: float

    @classmethod
    def start(cls) -> CpuWatch:
        return cls(busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter())

    def others_share(self) -> float | None:
        """Share of the machine's CPU capacity other processes used since :meth:`start`."""
        busy, wall = busy_cpu_seconds(), time.perf_counter() - self.wall
        if self.busy is None or busy is None or wall <= 0:
            return None
        others = (busy - self.busy) - (own_cpu_seconds() - self.own)
        return max(0.0, others) / (wall * (os.cpu_count() or 1))


def is_quiet(share: float | None) -> bool:
    """Whether other processes stayed (nearly) idle while a sample was taken."""
    return share is not None and share <= QUIET_SHARE


def quiet_indices(shares: Sequence[float | None]) -> list[int]:
    """Samples taken while other processes were (nearly) idle; all of them if none was."""
    quiet = [i for i, share in enumerate(shares) if is_quiet(share)]
    return quiet or list(range(len(shares)))


def above_quiet(shares: Sequence[float], what: str) -> str:
    """``"N of M <what> above 10%"``, and the warning when N > 0: the tail of a disturbance report."""
    busy = sum(s > QUIET_SHARE for s in shares)
    return f"{busy} of {len(shares)} {what} above {QUIET_SHARE:.0%}" + (DISTURBED if busy else "")


# -- timing ---------------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_calls(calls: Mapping[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each call, after one untimed warm-up each; repeats interleave the calls."""
    for call in calls.values():
        call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            samples[name].append(timed(call))
    return {name: median(s) for name, s in samples.items()}


def median_seconds(call: Callable[[], Any], repeats: int) -> float:
    """Median wall seconds of ``call`` over ``repeats`` runs, after one untimed warm-up."""
    return time_calls({"call": call}, repeats)["call"]


# -- targets and text -----------------------------------------------------------------------------------


def all_met(verdicts: Mapping[str, bool | None]) -> bool | None:
    """Whether every verdict is met; ``None`` when there are none."""
    return None if not verdicts else all(verdicts.values())


def at_least(values: Mapping[str, float | None], threshold: float) -> dict[str, Any]:
    """A target's report: its threshold, the values held to it, and whether all reach it (None: none)."""
    met = all_met({n: v is not None and v >= threshold for n, v in values.items()})
    return {"threshold": threshold, "values": dict(values), "met": met}


def ratio(top: float | None, bottom: float | None) -> float | None:
    """``top / bottom``; ``None`` when either is missing or ``bottom`` is not positive."""
    return top / bottom if top is not None and bottom is not None and bottom > 0 else None


def targets_met(targets: Mapping[str, Mapping[str, Any]]) -> dict[str, bool | None]:
    """Whether each target was met, from the targets' reports (:func:`at_least`): the ``targets_met`` key."""
    return {name: target["met"] for name, target in targets.items()}


def verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "n/a"}[met]


def fmt(value: float | None, spec: str, missing: str = "-") -> str:
    """``value`` formatted by ``spec``, or ``missing`` when it could not be measured."""
    return missing if value is None else format(value, spec)


def print_header(header: str) -> None:
    """A table's header line after a blank line, underlined."""
    print("\n" + header + "\n" + "-" * len(header))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A right-aligned plain-text table."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))


# -- the command line and the result --------------------------------------------------------------------


def new_parser(doc: str, quick: str, json: str = "write the results here") -> argparse.ArgumentParser:
    """A parser with the options every benchmark has: ``--quick`` (help ``quick``) and ``--json OUT``.

    Its description is the first paragraph of ``doc``, the script's docstring.
    """
    out = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    out.add_argument("--quick", action="store_true", help=quick)
    out.add_argument("--json", type=Path, metavar="OUT", help=json)
    return out


def choose_preset(args: argparse.Namespace, quick: T, full: T, **overrides: Any) -> T:
    """The quick or full preset (a dataclass, by ``args.quick``) with the overrides that were given."""
    base = quick if args.quick else full
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def given(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The options ``names`` the command line gave (not ``None``), by name."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def machine() -> dict[str, Any]:
    """The host, as the store and face benchmarks record it."""
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def host() -> dict[str, Any]:
    """The host and its load, as the network, ingest and query benchmarks record it in their config."""
    return {
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
    }


def write_result(path: Path | None, result: Any) -> None:
    """Write ``result`` as JSON to ``path`` (``--json OUT``) and say so; nothing without a path."""
    if path:
        print(f"wrote {write_json(path, result)}")
