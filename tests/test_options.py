"""Every default is one default: each ``mxn`` command's options against its API function, and both against
the library's settings.

A command's option is its :mod:`mxn.api` function's parameter, named by docs/API.md's rule (``--x-y`` is
``x_y``; ``--from/--to`` are ``start/end``; a switch that turns something off, such as ``--quiet``, is the
parameter's negation), with the same default; where the library has a settings class or function for the
parameter (``IngestConfig``, ``FaceConfig``, ``TrainConfig``, the tuner, ...), that default too. The
check is run on deliberately altered copies as well, to show it fails when one of the three changes alone.

Equal is not enough: each default is also *written once*. The command line writes no default (its options
take the API's, :func:`mxn.cli.common.job_option`) and no choice list the library names; the API function's
default is an expression that reads the library's one declaration (``IngestConfig.topk``,
``DEFAULT_ALPHA`` from :mod:`mxn.facerec.settings`), found by following the source's imports (AST) to where
the value is written, and it is the declaration the library's own default reads.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import importlib
import inspect
import textwrap
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import click
import pytest

from mxn import api
from mxn.cli import main
from mxn.cli.demo import run_demo
from mxn.ingest.config import ExtractorConfig, IngestConfig

ROOT = Path(__file__).resolve().parents[1]

#: The API function behind each job command.
JOBS: dict[str, Callable[..., Any]] = {
    "calibrate": api.calibrate,
    "crops": api.index_crops,
    "demo": run_demo,
    "evaluate": api.evaluate,
    "faces": api.label_faces,
    "ingest": api.ingest,
    "movie": api.make_movie,
    "query": api.query,
    "train faces": api.train_faces,
    "train images": api.train,
    "tune faces": api.tune_faces,
    "tune query": api.tune_query,
    "world crops": api.render_crops,
    "world video": api.render_traffic_video,
}
#: Commands that show something rather than run a job: they have no API function.
NOT_JOBS = {"info", "models check", "models list", "world presets"}

#: docs/API.md's exceptions to ``--x-y`` is ``x_y``.
RENAMED = {"from": "start", "to": "end", "also_db": "also", "pooled": "pooled_precision"}
#: Options that switch something off: the parameter is the positive switch (``--quiet``: ``progress=False``).
SWITCHED_OFF = {"quiet": "progress", "no_cache": "cache", "no_reject": "reject", "no_augment": "augment"}
#: Options of the command line alone.
CLI_ONLY = {"json"}


def sources() -> dict[str, list[tuple[Any, dict[str, str]]]]:
    """Per command, the library's settings whose defaults its API function's parameters take:
    ``(a dataclass or a function, {API parameter: its field or parameter})``."""
    from mxn.calibration import calibrate_thresholds
    from mxn.datasets.world.crop_set import CropConfig, build_crops
    from mxn.datasets.world.video import render_clip
    from mxn.facerec.evaluation import truth_sample
    from mxn.facerec.model import face_spec
    from mxn.facerec.pipeline import FaceConfig
    from mxn.facerec.training_set import collect_face_crops
    from mxn.facerec.tuning import tune_thresholds
    from mxn.ingest.training_set import export_training_set
    from mxn.query.executor import QueryExecutor
    from mxn.query.tuning import tune
    from mxn.spec import NetworkSpec
    from mxn.training import TrainConfig, fit_model

    ingest = ("mode", "exits", "topk", "cluster_exit", "cluster_threshold", "max_clusters", "stride",
              "skip_static", "chunk_frames", "range_frames", "crop_size")  # fmt: skip
    tuning = ("target_precision", "target_recall", "confidence", "holdout", "seed", "per_label",
              "pooled_precision", "index_stage")  # fmt: skip
    training = ("loss", "gamma", "epochs", "batch_size", "optimizer", "augment", "seed")
    return {
        "calibrate": [(calibrate_thresholds, same("target_precision", "confidence"))],
        "crops": [(export_training_set, {"index": "mode", **same("every", "block_seconds", "seed")})],
        "faces": [(FaceConfig, same("detector", "stride", "min_face", "chunk_frames"))],
        "ingest": [(IngestConfig, same(*ingest)), (ExtractorConfig, same("warmup", "min_area"))],
        "query": [(QueryExecutor.run, {"mode": "mode", "index": "index_mode"})],
        "train faces": [(collect_face_crops, same("detector", "stride")), (face_spec, same("width"))],
        "train images": [
            (NetworkSpec, same("backbone", "exits", "stem", "aggregation")),
            (TrainConfig, {"lr": "learning_rate", **same(*training)}),
            (fit_model, same("target_precision")),
        ],
        "tune faces": [
            (tune_thresholds, same("target_accuracy", "alpha")),
            (truth_sample, same("detector", "stride")),
        ],
        "tune query": [(tune, {"reject": "allow_reject", **same(*tuning)})],
        "world crops": [
            (CropConfig, same("size", "source", "every", "max_per_track")),
            (build_crops, same("seed")),
        ],
        "world video": [(render_clip, same("seed", "fps"))],
    }


def same(*names: str) -> dict[str, str]:
    return {name: name for name in names}


def commands(group: click.Group = main, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    """Every command of the ``mxn`` tree that is not a group, by its path (``"tune query"``)."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def parameter_of(option: click.Option) -> tuple[str, bool]:
    """The API parameter an option stands for, by docs/API.md's rule, and whether it is its negation."""
    name = max((o for o in option.opts if o.startswith("--")), key=len)[2:].replace("-", "_")
    if name in SWITCHED_OFF:
        return SWITCHED_OFF[name], True
    return RENAMED.get(name, name), False


def default_in(source: Any, name: str) -> Any:
    """The default of field ``name`` of a dataclass, or of parameter ``name`` of a function."""
    if dataclasses.is_dataclass(source):
        (field,) = [f for f in dataclasses.fields(source) if f.name == name]
        return field.default
    return inspect.signature(source).parameters[name].default


def equal(a: Any, b: Any) -> bool:
    """The same value of the same type (a default of ``2`` is not one of ``2.0``: the help shows both)."""
    return a == b and type(a) is type(b)


def mismatches(
    command: click.Command, job: Callable[..., Any], settings: list[tuple[Any, dict[str, str]]]
) -> list[str]:
    """Every option whose default is not its API parameter's, and every API default not the library's."""
    found = []
    params = inspect.signature(job).parameters
    for option in command.params:
        if not isinstance(option, click.Option) or option.opts[0].lstrip("-") in CLI_ONLY | {"help"}:
            continue
        name, negated = parameter_of(option)
        if name not in params:
            found.append(f"{option.opts[0]}: {job.__name__} has no parameter {name}")
            continue
        wanted = params[name].default
        if wanted is inspect.Parameter.empty:
            if not option.required:
                found.append(f"{option.opts[0]}: optional, but {job.__name__}({name}) is required")
            continue
        default = (not option.default) if negated else option.default
        if option.multiple and default is None:
            default = ()
        if not equal(default, wanted):
            found.append(f"{option.opts[0]}: {default!r}, but {job.__name__}({name}={wanted!r})")
    for source, names in settings:
        for name, field in names.items():
            theirs = default_in(source, field)
            if not equal(params[name].default, theirs):
                where = getattr(source, "__qualname__", source)
                found.append(
                    f"{job.__name__}({name}={params[name].default!r}), but {where}.{field}={theirs!r}"
                )
    return found


@pytest.fixture(scope="module")
def settings() -> dict[str, list[tuple[Any, dict[str, str]]]]:
    return sources()


def test_every_command_is_a_job_with_an_api_function_or_shows_something():
    found = dict(commands())
    assert set(found) == set(JOBS) | NOT_JOBS


@pytest.mark.parametrize("path", sorted(JOBS))
def test_each_option_has_its_api_parameters_default_and_the_librarys(path, settings):
    command = dict(commands())[path]
    assert mismatches(command, JOBS[path], settings.get(path, [])) == []


def test_the_settings_name_real_parameters(settings):
    """A source that names a parameter the API function lacks would be skipped silently: it is not."""
    for path, pairs in settings.items():
        params = inspect.signature(JOBS[path]).parameters
        for _, names in pairs:
            assert set(names) <= set(params), path


def library_choices() -> dict[tuple[str, str], tuple[str, ...]]:
    """Per (command, option), the library's tuple of the values its ``click.Choice`` offers."""
    from mxn.datasets.world.crop_set import SOURCES
    from mxn.facerec.detection import DETECTORS
    from mxn.ingest.config import MODES as INGEST_MODES
    from mxn.query.settings import INDEX_MODES, MODES
    from mxn.training import OPTIMIZERS

    return {
        **{(path, "detector"): DETECTORS for path in ("faces", "tune faces", "train faces")},
        **{(path, "index"): INDEX_MODES for path in ("crops", "query", "tune query")},
        ("ingest", "mode"): INGEST_MODES,
        ("query", "mode"): MODES,
        ("train images", "optimizer"): OPTIMIZERS,
        ("world crops", "source"): SOURCES,
    }


def test_the_command_lines_choices_are_the_librarys():
    offered = {
        (path, option.name): tuple(option.type.choices)
        for path, command in commands()
        for option in command.params
        if isinstance(option.type, click.Choice)
    }
    for key, choices in library_choices().items():
        assert offered[key] == choices, key


# -- every default is written once ------------------------------------------------------------------------


@cache
def _module_tree(module: str) -> ast.Module:
    return ast.parse(inspect.getsource(importlib.import_module(module)))


def _imported_from(module: str, node: ast.ImportFrom) -> str:
    """The absolute name of the module ``node`` (an import in ``module``) imports from."""
    if not node.level:
        return node.module or ""
    here = module if hasattr(importlib.import_module(module), "__path__") else module.rpartition(".")[0]
    parts = here.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _targets(node: ast.AST) -> list[ast.expr]:
    """What an assignment assigns to (nothing, for any other statement)."""
    if isinstance(node, ast.Assign):
        return node.targets
    return [node.target] if isinstance(node, ast.AnnAssign) else []


def _binding(module: str, name: str) -> ast.stmt | None:
    """The top-level statement of ``module`` that binds ``name``: an import, a class, a function, or an
    assignment."""
    for node in _module_tree(module).body:
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            return node
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == name:
            return node
        if any(isinstance(n, ast.Name) and n.id == name for t in _targets(node) for n in ast.walk(t)):
            return node
    return None


def _assigned(node: ast.stmt | None, path: list[str]) -> ast.expr | None:
    """The expression ``path`` (``NAME`` or ``Class.field``) is given in ``node``, where one is."""
    if isinstance(node, ast.ClassDef) and len(path) == 2:
        for item in node.body:
            if any(isinstance(t, ast.Name) and t.id == path[1] for t in _targets(item)):
                return item.value  # type: ignore[attr-defined]
    for target in _targets(node) if len(path) == 1 else []:
        value = node.value  # type: ignore[union-attr]
        if isinstance(target, ast.Name) and target.id == path[0]:
            return value
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):  # A, B = 1, 2
            names = [t.id if isinstance(t, ast.Name) else None for t in target.elts]
            if path[0] in names and len(names) == len(value.elts):
                return value.elts[names.index(path[0])]
    return None


def _home(module: str, path: list[str]) -> str:
    """Where ``path`` as ``module`` sees it is written: imports and names that only name another followed."""
    node = _binding(module, path[0])
    if isinstance(node, ast.ImportFrom):
        (alias,) = [a for a in node.names if (a.asname or a.name) == path[0]]
        return _home(_imported_from(module, node), [alias.name, *path[1:]])
    further = declaration(module, _assigned(node, path))
    return further or f"{module}:{'.'.join(path)}"


def declaration(module: str, expr: ast.expr | None) -> str | None:
    """Where the value of ``expr`` (a default in ``module``'s source) is written: ``module:Name.field``;
    ``None`` when ``expr`` is not a name or an attribute of one (a value written out, or a computation)."""
    path: list[str] = []
    while isinstance(expr, ast.Attribute):
        path.insert(0, expr.attr)
        expr = expr.value
    return _home(module, [expr.id, *path]) if isinstance(expr, ast.Name) else None


def parameter_default(function: Callable[..., Any], name: str) -> ast.expr | None:
    """The source expression of ``function``'s default for parameter ``name``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    with_defaults = positional[len(positional) - len(args.defaults) :]
    defaults = dict(zip([a.arg for a in with_defaults], args.defaults, strict=True))
    defaults |= {a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None}
    return defaults.get(name)


def library_declaration(source: Any, name: str) -> str:
    """Where the library writes the default of ``source``'s field or parameter ``name``."""
    module, qualname = source.__module__, source.__qualname__
    if dataclasses.is_dataclass(source):
        return _home(module, [qualname, name])
    return declaration(module, parameter_default(source, name)) or f"{module}:{qualname}({name})"


def restatements(job: Callable[..., Any], settings: list[tuple[Any, dict[str, str]]]) -> dict[str, str]:
    """Per API parameter, how its default fails to read the library's one declaration of it."""
    found = {}
    for source, names in settings:
        for name, field in names.items():
            expr = parameter_default(job, name)
            theirs = library_declaration(source, field)
            if isinstance(expr, ast.Constant) and expr.value is None and default_in(source, field) is None:
                continue  # "not given", on both sides: nothing to declare
            ours = declaration(job.__module__, expr)
            written = f"{job.__name__}({name}={ast.unparse(expr) if expr else '?'})"
            if ours is None:
                found[name] = f"{written} writes out {theirs}"
            elif ours != theirs:
                found[name] = f"{written} reads {ours}, not {theirs}"
    return found


@pytest.mark.parametrize("path", sorted(JOBS))
def test_each_api_default_reads_the_librarys_one_declaration(path, settings):
    found = restatements(JOBS[path], settings.get(path, []))
    assert found == {}


def written_in_the_command_line(folder: Path = ROOT / "mxn" / "cli") -> list[str]:
    """Every default and every choice list that the command line's source (``folder``) writes out itself."""
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                value = keyword.value
                names = [n for n in ast.walk(value) if isinstance(n, ast.Name)]
                if (
                    keyword.arg == "default"
                    and not names
                    and not (isinstance(value, ast.Constant) and value.value is None)
                ):
                    found.append(f"{path.name}:{node.lineno}: default={ast.unparse(value)}")
            is_choice = isinstance(node.func, ast.Attribute) and node.func.attr == "Choice"
            if is_choice and node.args and isinstance(node.args[0], ast.List | ast.Tuple | ast.Set):
                found.append(ast.unparse(node))
    return found


def test_the_command_line_writes_out_no_default_and_no_choices_of_the_librarys():
    """Its options take the API's defaults (job_option); its choices are the library's tuples."""
    assert written_in_the_command_line() == []


#: A restatement of ExtractorConfig's defaults, as mxn/api/traffic.py had them (the check's planted case).
_WARMUP, _MIN_AREA = 45, 60


def _planted(
    warmup: int = _WARMUP,
    min_area: int = 60,
    topk: int = IngestConfig.topk,
    cluster_exit: int | None = IngestConfig.exits,
    exits: tuple[int, ...] | None = None,
) -> None:
    """An API function that restates three defaults of the library, each equal to the library's."""


def test_the_check_fails_on_a_default_written_out_or_read_from_elsewhere():
    settings = [
        (ExtractorConfig, same("warmup", "min_area")),
        (IngestConfig, same("topk", "cluster_exit", "exits")),
    ]
    # every value is the library's: the equality check cannot see these
    assert all(
        default_in(s, n) == inspect.signature(_planted).parameters[n].default
        for s, ns in settings
        for n in ns
    )
    assert restatements(_planted, settings) == {
        "warmup": (
            f"_planted(warmup=_WARMUP) reads {__name__}:_WARMUP, not mxn.ingest.config:ExtractorConfig.warmup"
        ),
        "min_area": "_planted(min_area=60) writes out mxn.ingest.config:ExtractorConfig.min_area",
        "cluster_exit": (
            "_planted(cluster_exit=IngestConfig.exits) reads mxn.ingest.config:IngestConfig.exits, "
            "not mxn.ingest.config:IngestConfig.cluster_exit"
        ),
    }
    # followed through re-exports: the tuner's rate is the labeller's, which is the settings module's
    from mxn.facerec.tuning import tune_thresholds

    assert library_declaration(tune_thresholds, "alpha") == "mxn.facerec.settings:DEFAULT_ALPHA"


def test_the_check_fails_on_a_command_line_that_writes_a_default_or_a_choice_list(tmp_path):
    (tmp_path / "planted.py").write_text(
        "import click\n\n"
        "@click.option('--topk', type=int, default=2)\n"
        "@click.option('--detector', type=click.Choice(['hog', 'haar', 'mtcnn']))\n"
        "@click.option('--db', default=None)\n"
        "def planted(topk, detector, db): ...\n"
    )
    assert written_in_the_command_line(tmp_path) == [
        "planted.py:3: default=2",
        "click.Choice(['hog', 'haar', 'mtcnn'])",
    ]


# -- the check fails when one default changes alone -------------------------------------------------------


def _altered_option(command: click.Command, name: str, default: Any) -> click.Command:
    """A copy of ``command`` whose option ``name`` has another default (the original is left as it was)."""
    altered = copy.copy(command)
    altered.params = [copy.copy(p) for p in command.params]
    (option,) = [p for p in altered.params if p.name == name]
    option.default = default
    return altered


def _altered_job(job: Callable[..., Any], name: str, default: Any) -> Callable[..., Any]:
    """A stand-in for ``job`` whose parameter ``name`` has another default."""

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        return job(*args, **kwargs)

    signature = inspect.signature(job)
    stand_in.__name__ = job.__name__
    stand_in.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            p.replace(default=default) if p.name == name else p for p in signature.parameters.values()
        ]
    )
    return stand_in


def test_the_check_fails_when_one_default_changes_alone(settings):
    from mxn.ingest.config import IngestConfig

    command, job, library = dict(commands())["ingest"], api.ingest, settings["ingest"]
    assert mismatches(command, job, library) == []

    # the command line's default alone
    assert mismatches(_altered_option(command, "topk", 3), job, library) == ["--topk: 3, but ingest(topk=2)"]
    # the API function's alone: it now differs from the option and from IngestConfig
    assert mismatches(command, _altered_job(job, "topk", 3), library) == [
        "--topk: 2, but ingest(topk=3)",
        "ingest(topk=3), but IngestConfig.topk=2",
    ]

    # the library's alone
    @dataclasses.dataclass(frozen=True)
    class AlteredConfig(IngestConfig):
        topk: int = 3

    altered = [
        (AlteredConfig, names) if source is IngestConfig else (source, names) for source, names in library
    ]
    found = mismatches(command, job, altered)
    assert len(found) == 1 and found[0].startswith("ingest(topk=2), but ") and found[0].endswith("topk=3")

    # a switch that turns something off, a renamed option, a type that differs
    assert mismatches(_altered_option(command, "quiet", True), job, library) == [
        "--quiet: False, but ingest(progress=True)"
    ]
    query = dict(commands())["query"]
    assert mismatches(_altered_option(query, "start", "0:10"), api.query, []) == [
        "--from: '0:10', but query(start=None)"
    ]
    assert mismatches(command, _altered_job(job, "cluster_threshold", 0), []) == [
        "--cluster-threshold: 0.1, but ingest(cluster_threshold=0)"
    ]
