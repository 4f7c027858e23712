"""Every default is one default: each ``mxn`` command's options against its API function, and both against
the library's settings.

A command's option is its :mod:`mxn.api` function's parameter, named by docs/API.md's rule (``--x-y`` is
``x_y``; ``--from/--to`` are ``start/end``; a switch that turns something off, such as ``--quiet``, is the
parameter's negation), with the same default; where the library has a settings class or function for the
parameter (``IngestConfig``, ``FaceConfig``, ``TrainConfig``, the tuner, ...), that default too. The
check is run on deliberately altered copies as well, to show it fails when one of the three changes alone.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import click
import pytest

from mxn import api
from mxn.cli import main
from mxn.cli.demo import run_demo

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
    from mxn.datasets.world.crop_set import CropConfig
    from mxn.datasets.world.video import render_clip
    from mxn.facerec.evaluation import truth_sample
    from mxn.facerec.model import face_spec
    from mxn.facerec.pipeline import FaceConfig
    from mxn.facerec.training_set import collect_face_crops
    from mxn.facerec.tuning import tune_thresholds
    from mxn.ingest.config import IngestConfig
    from mxn.ingest.extraction import ExtractorConfig
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
        "world crops": [(CropConfig, same("size", "source", "every", "max_per_track"))],
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


def test_the_command_lines_choices_are_the_librarys():
    from mxn.cli.faces import DETECTORS
    from mxn.facerec.detection import DETECTORS as LIBRARY_DETECTORS

    assert DETECTORS == LIBRARY_DETECTORS


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
