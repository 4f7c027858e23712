"""How long a command takes to start: importing the job layer and printing ``mxn --help``.

A command that answers ``--help`` or rejects a typo should not wait for
TensorFlow, OpenCV or NumPy, whatever the code's layout. Each snippet runs in
a fresh interpreter (this one's), timed around the subprocess, the trees
interleaved run by run so a busy spell hits them alike. ``--before DIR`` adds
another checkout of mxn (e.g. ``git worktree add /tmp/before REV``), run from
its own folder, which puts its packages first on the path.

JSON: ``runs``, ``trees`` and, per tree and snippet, ``median_ms`` and ``runs_ms``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from harness import machine, median, new_parser, print_table, write_result

ROOT = Path(__file__).resolve().parents[1]

#: What is timed: the job layer's import, and ``mxn --help`` in-process (no console-script wrapper).
SNIPPETS = {
    "import mxn.api, mxn.cli": "import mxn.api, mxn.cli",
    "mxn --help": "import sys\nsys.argv = ['mxn', '--help']\nfrom mxn.cli import main\ntry:\n    main()\n"
    "except SystemExit:\n    pass",
}


def run_once(code: str, tree: Path) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, check=True)
    return time.perf_counter() - began


def main() -> None:
    parser = new_parser(__doc__, quick="3 runs of each snippet instead of 15")
    parser.add_argument("--before", type=Path, metavar="DIR", help="another checkout to time side by side")
    args = parser.parse_args()
    runs = 3 if args.quick else 15
    trees = {"this tree": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    times: dict[str, dict[str, list[float]]] = {name: {s: [] for s in SNIPPETS} for name in trees}
    for _ in range(runs):
        for snippet, code in SNIPPETS.items():
            for name, tree in trees.items():
                times[name][snippet].append(1000 * run_once(code, tree))
    rows = [[snippet, *(f"{median(times[name][snippet]):.0f} ms" for name in trees)] for snippet in SNIPPETS]
    print_table(["median of " + str(runs), *trees], rows)
    write_result(
        args.json,
        {
            "machine": machine(),
            "runs": runs,
            "trees": {name: str(tree) for name, tree in trees.items()},
            "results": {
                name: {s: {"median_ms": median(v), "runs_ms": v} for s, v in by_snippet.items()}
                for name, by_snippet in times.items()
            },
        },
    )


if __name__ == "__main__":
    main()
