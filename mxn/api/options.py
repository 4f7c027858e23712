"""What every job of the Python API shares: its argument checks, its database and its models.

A bad argument is refused here, by name, before any slow work starts
(:class:`OptionError`); the command line turns the same error into its own
words. The database and model helpers open what a job was given (a URL or
file) or use what it was handed already open, so a script that runs many jobs
opens each thing once. Nothing here imports a stage or TensorFlow until a job
asks for it: importing :mod:`mxn.api` stays cheap.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mxn.modelfile import MXNModel
    from mxn.storage.store import Store

PathLike = str | os.PathLike
#: A callable that shows one line of news (the command line passes ``click.echo``).
Log = Callable[[str], None]


# -- errors and argument parsing ----------------------------------------------------------------------------


class OptionError(ValueError):
    """An argument that cannot work, raised before any slow work starts.

    One check serves the Python caller and the command line, so the message
    names arguments as ``{name}`` fields that each caller fills in its own
    words: ``str(err)`` with the parameter (``workers``), the command line
    with the option (``--workers``).

    Args:
        message: what is wrong and what to do, with ``{name}`` for each
            argument in ``mentions``.
        param: the one argument at fault, if there is one (the command line
            shows ``Invalid value for --param: message``).
        usage: a misuse of the options (exit code 2 on the command line),
            rather than a state of things that the options cannot change (1).
        mentions: the arguments the message names (only these are filled
            in, so a value quoted in the message may hold braces).
    """

    def __init__(
        self, message: str, param: str | None = None, usage: bool = True, mentions: Sequence[str] = ()
    ) -> None:
        self.message, self.param, self.usage, self.mentions = message, param, usage, tuple(mentions)
        super().__init__(self.render(str))

    def text(self, name: Callable[[str], str]) -> str:
        """The message with each mentioned argument spelt by ``name``."""
        out = self.message
        for mention in self.mentions:
            out = out.replace(f"{{{mention}}}", name(mention))
        return out

    def render(self, name: Callable[[str], str]) -> str:
        """The whole message, prefixed with the argument at fault, spelt by ``name``."""
        return f"{name(self.param)}: {self.text(name)}" if self.param else self.text(name)


def as_paths(values: PathLike | Iterable[PathLike], param: str, what: str = "video") -> list[str]:
    """One path or several, as a list of strings (a lone string is one path, not its characters)."""
    items = [values] if isinstance(values, str | os.PathLike) else list(values)
    if not items:
        raise OptionError(f"give at least one {what}", param)
    return [os.fspath(v) for v in items]


def int_list(value: str | Sequence[int] | None, param: str) -> tuple[int, ...] | None:
    """``"0,2,4"`` or ``[0, 2, 4]`` as a tuple; ``None`` or empty text: ``None`` (the default)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        parts = value.split(",") if isinstance(value, str) else list(value)
        return tuple(int(x) for x in parts if not isinstance(x, str) or x.strip())
    except (TypeError, ValueError):
        raise OptionError(f"expected exit numbers such as 0,2,4; got {value!r}", param) from None


def float_list(value: str | Sequence[float] | None, param: str) -> list[float] | None:
    """``"1,0.5"`` or ``[1, 0.5]`` as a list of floats; ``None`` or empty text: ``None`` (the default)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        parts = value.split(",") if isinstance(value, str) else list(value)
        return [float(x) for x in parts]
    except (TypeError, ValueError):
        raise OptionError(f"expected comma-separated numbers, got {value!r}", param) from None


def name_list(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"a,b"`` or ``["a", "b"]`` as a tuple of stripped names; ``None``: ``None``."""
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    return tuple(p.strip() for p in parts if p.strip()) or None


_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")


def parse_time(text: str | float | None, param: str | None = None) -> float | None:
    """Seconds from ``90``, ``90.5``, ``"1:30"`` or ``"0:01:30"``; ``None`` stays ``None``."""
    if text is None:
        return None
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        text = text.strip()
        try:
            seconds = float(text)
        except ValueError:
            match = _CLOCK.match(text)
            if not match:
                raise OptionError(f"expected seconds or [h:]mm:ss, got {text!r}", param) from None
            hours, minutes, secs = match.groups()
            seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
    if seconds < 0:
        raise OptionError(f"times are >= 0, got {text!r}", param)
    return seconds


def parse_size(value: str | Sequence[int], param: str) -> tuple[int, int]:
    """``"640x360"`` or ``(640, 360)`` as ``(width, height)``."""
    try:
        width, height = (int(v) for v in (value.lower().split("x") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        raise OptionError(f"expected WIDTHxHEIGHT, got {value!r}", param) from None
    return width, height


def check_suffix(path: PathLike | None, suffixes: Sequence[str], param: str) -> None:
    """Refuse an output whose extension its writer cannot write, before the work that feeds it."""
    if path and not os.fspath(path).lower().endswith(tuple(suffixes)):
        raise OptionError(f"{os.fspath(path)}: expected {' or '.join(suffixes)}", param)


def existing(path: PathLike, what: str, folder: bool) -> Path:
    """``path`` when it is there and of the kind asked for (a folder or a file), else the error saying so."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such {what}")
    if folder and not path.is_dir():
        raise NotADirectoryError(f"{path}: expected a folder ({what}), found a file")
    if not folder and path.is_dir():
        raise IsADirectoryError(f"{path}: expected a file ({what}), found a folder")
    return path


# -- the database and the models -------------------------------------------------------------------------


def database_url(db: str | os.PathLike | Store | None = None) -> str:
    """The database every job uses: ``db``, else ``$MXN_DB``, else ``sqlite:///mxn.db``.

    A URL is used as it is; anything else (``"cams.db"``, ``Path("out/x.db")``)
    is an SQLite file (:func:`mxn.storage.database_url`, the one resolver, which
    this only hands ``db`` to); an open :class:`~mxn.storage.store.Store` gives
    its URL (password masked).
    """
    from mxn.storage import Store
    from mxn.storage import database_url as resolve

    if isinstance(db, Store):
        return db.url
    return resolve(db)


@contextmanager
def open_store(db: str | os.PathLike | Store | None, create: bool = False) -> Iterator[Store]:
    """The store of ``db`` for one job: opened and closed here, or the caller's open one, left open.

    Only the jobs that index (ingest, faces) ``create`` a store; the others
    open an existing mxn database or fail, writing nothing. An SQLite file
    made for a job that stored nothing (every video failed) is removed again:
    a failed job leaves nothing behind.
    """
    from mxn.storage.store import Store, sqlite_path

    if isinstance(db, Store):
        yield db
        return
    url = database_url(db)
    path = sqlite_path(url) if create else None
    fresh = path is not None and not path.exists()
    store = Store(url, create=create)
    try:
        yield store
    finally:
        empty = fresh and _holds_nothing(store)
        store.close()
        if empty and path is not None:
            path.unlink(missing_ok=True)


def _holds_nothing(store: Store) -> bool:
    """Whether a store has no row of anything (an error reading it counts as holding something)."""
    try:
        return not any(store.counts().values())
    except Exception:  # the job's own error, if any, is the one to see
        return False


def is_loaded(value: object) -> bool:
    """True for a model or store already open, rather than a file or URL (``None``: the default)."""
    return not isinstance(value, str | os.PathLike | None)


def ready_model(model: PathLike | MXNModel | None, default: str) -> MXNModel:
    """``model`` ready to run: one already loaded as it is, else its file or the bundled ``default``."""
    from mxn.defaults import load_default_model
    from mxn.modelfile import MXNModel, load_model

    if isinstance(model, MXNModel):
        return model
    return load_model(model) if model else load_default_model(default)


def given_model(model: PathLike | MXNModel | None, param: str) -> MXNModel | None:
    """An optional model argument: ``None`` stays ``None``, a file is checked and loaded."""
    if model is None or is_loaded(model):
        return model  # type: ignore[return-value]
    from mxn.modelfile import load_model

    return load_model(existing(model, f"{param} model file", folder=False))


def say(log: Log | None, line: str) -> None:
    """Pass one line of news to ``log``, when the caller gave one."""
    if log is not None:
        log(line)


def load_tensorflow() -> None:
    """Load TensorFlow without its C++ start-up lines on the terminal, as the command line does."""
    from mxn.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
