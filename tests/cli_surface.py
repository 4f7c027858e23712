"""The command line's outward surface: every command's ``--help`` text and the shape of every
``--json`` file, so a change of the code's layout can be held against the surface as it was.

``python tests/cli_surface.py OUT.json`` records it; tests/test_layout.py compares the code of the
day with the record in tests/data/cli_surface.json, made before the house was rebuilt. The command
is found through the ``mxn`` console-script entry point, which stays put when modules move.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner

HELP_ENV = {"COLUMNS": "100", "MXN_DB": ""}


def console_command() -> click.Group:
    """The click group behind the installed ``mxn`` script."""
    (point,) = entry_points(group="console_scripts", name="mxn")
    return point.load()


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(group, click.Group):
        for name in sorted(group.list_commands(click.Context(group))):
            yield from _commands(group.get_command(click.Context(group), name), (*path, name))


def help_tree() -> dict[str, str]:
    """``mxn ... --help`` of every command and group, keyed by the command path."""
    main, runner = console_command(), CliRunner()
    tree = {}
    for path in _commands(main):
        done = runner.invoke(main, [*path, "--help"], env=HELP_ENV, prog_name="mxn")
        assert done.exit_code == 0, (path, done.output)
        tree[" ".join(("mxn", *path))] = done.output
    return tree


def shape(value: Any) -> Any:
    """The keys of a JSON value and the kinds of its leaves: what stays when the figures change."""
    if isinstance(value, dict):
        return {str(key): shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        shapes = [shape(item) for item in value]
        kinds = []
        for item in shapes:
            if item not in kinds:
                kinds.append(item)
        return kinds
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


def json_shapes(work: Path) -> dict[str, Any]:
    """Run every command that writes ``--json`` on tiny inputs and keep the shape of each file."""
    main, runner = console_command(), CliRunner()
    db = f"sqlite:///{work / 'surface.db'}"
    shapes: dict[str, Any] = {}

    def run(name: str, *args: str, stdout: bool = False) -> None:
        out = work / f"{name}.json"
        argv = [*args] if stdout else [*args, "--json", str(out)]
        done = runner.invoke(main, argv, env=HELP_ENV, prog_name="mxn", catch_exceptions=False)
        assert done.exit_code == 0, (argv, done.output)
        shapes[name] = shape(json.loads(done.stdout if stdout else out.read_text()))

    video, crops, movie, cast = work / "clip.mp4", work / "crops", work / "movie.mp4", work / "cast"
    run("world video", "world", "video", "--seconds", "4", "--size", "320x180", "-o", str(video))
    run("ingest", "ingest", str(video), "--db", db, "--quiet")
    run("query", "query", "car", "--db", db)
    run("tune query", "tune", "query", "--db", db, "--out", str(work / "t.json"))
    run("crops", "crops", "--db", db, "-o", str(work / "index-crops"), "--quiet")
    run("world crops", "world", "crops", "-o", str(crops), "--seconds", "6", "--size", "32",
        "--presets", "downtown")  # fmt: skip
    model = work / "m.mxn"
    run("train images", "train", "images", str(crops), "-o", str(model), "--input-size", "32",
        "--epochs", "1", "--exits", "2,8", "--width", "0.125")  # fmt: skip
    run("info", "info", str(model), "--json", stdout=True)
    run("evaluate", "evaluate", str(model), str(crops))
    run("calibrate", "calibrate", str(model), str(crops), "-o", str(work / "c.mxn"))
    run("models check", "models", "check", str(crops))
    run("movie", "movie", "--preset", "tiny", "-o", str(movie), "--gallery", str(cast))
    run("faces", "faces", str(movie), "--gallery", str(cast), "--db", db, "--quiet")
    run("tune faces", "tune", "faces", str(movie), "--gallery", str(cast), "--out", str(work / "f.json"))
    return shapes


def surface(work: Path) -> dict[str, Any]:
    return {"help": help_tree(), "json": json_shapes(work)}


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        Path(sys.argv[1]).write_text(json.dumps(surface(Path(tmp)), indent=1, sort_keys=True) + "\n")
