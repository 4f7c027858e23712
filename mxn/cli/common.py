"""What every command of the ``mxn`` command line shares: options, clear errors, warnings, tables, JSON files.

A command's options are its :mod:`mxn.api` function's parameters, and so are
their defaults: :func:`job_option` reads each default from the function (which
reads it from the stage's settings), so a default is written in one place and
the command line cannot drift from the API (tests/test_options.py checks
every command).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache, wraps
from typing import Any

import click

#: The two wordings of ``--db``'s help (``mxn faces`` says it the other way round).
DB_HELP = "Database URL (default: sqlite:///mxn.db, or $MXN_DB)."
DB_HELP_FACES = "Database URL (default: $MXN_DB or sqlite:///mxn.db)."


def default_of(job: Callable[..., Any], param: str) -> Any:
    """The default of ``job``'s parameter ``param`` (``inspect.Parameter.empty`` when it has none)."""
    return _parameters(job)[param].default


@cache
def _parameters(job: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    return inspect.signature(job).parameters


def param_of(decls: Sequence[str]) -> str:
    """The API parameter an option stands for, by docs/API.md's rule: ``--cluster-threshold`` is
    ``cluster_threshold`` (the long name; of a ``--x/--no-x`` switch, the first)."""
    longs = [d.split("/")[0] for d in decls if d.startswith("--")]
    return max(longs, key=len)[2:].replace("-", "_")


def job_option(job: Callable[..., Any], *decls: str, param: str | None = None, **attrs: Any) -> Callable:
    """``click.option(*decls, **attrs)`` whose default is that of ``job``'s parameter for the option.

    The parameter is the option's name (:func:`param_of`) unless ``param``
    names it; the option keeps it as its name too, so the command can pass it
    on as it came.
    """
    name = param or param_of(decls)
    if not any(d.isidentifier() for d in decls):
        decls = (*decls, name)
    return click.option(*decls, default=default_of(job, name), **attrs)


def db_option(wording: str = DB_HELP) -> Callable:
    """``--db URL``: the database of the job (``None``: ``$MXN_DB``, else ``sqlite:///mxn.db``)."""
    return click.option("--db", default=None, help=wording)


def quiet_option() -> Callable:
    """``--quiet``: the API's ``progress=False``."""
    return click.option("--quiet", is_flag=True, help="No progress bars.")


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
    ("mxn.media.video", "VideoError"),
    ("mxn.storage.store", "StoreError"),
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


def write_json_file(path: str | None, data: dict[str, Any]) -> None:
    if path:
        from mxn.jsonfile import write_json

        click.echo(f"wrote {write_json(path, data)}")


def fmt(value: float | None, pct: bool = True) -> str:
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
        rows.append([i, fmt(acc), fmt(ex.threshold, pct=False), fmt(ex.precision), fmt(share)])
    print_table(["exit", "test accuracy", "threshold", "calib. precision", "test share exiting"], rows)
    click.echo(
        f"\nearly exit on test data: accuracy {fmt(ev.early_exit_accuracy)}, "
        f"undecided after the last exit {fmt(ev.undecided_share)} "
        f"(thresholds for {100 * cal.target_precision:.0f}% precision)"
    )
