"""A throwaway PostgreSQL server for the tests: a private cluster in a temp directory.

The storage and ingest tests run on a real PostgreSQL, not only on SQLite,
because the two differ in exactly the places that break stores (types,
transactions, RETURNING, parameter limits). No running server or password
is needed: ``initdb`` makes a fresh cluster with trust authentication that
listens only on 127.0.0.1 (and a socket inside the temp directory), with
fsync off because its data is thrown away.

PostgreSQL refuses to run as root, and CI runs as root; then the server runs
as ``nobody`` and owns its temp directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

INSTALL_HINT = (
    "PostgreSQL's initdb and pg_ctl were not found on PATH nor under /usr/lib/postgresql/*/bin: "
    "install PostgreSQL (Debian: apt-get install postgresql); .ci/run does this"
)
USER = "postgres"  # the superuser initdb creates (-U), whatever the OS user


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL binaries: the tests fail with INSTALL_HINT rather than silently skip."""


def find_bindir() -> Path:
    """The directory holding initdb and pg_ctl: PATH first, then the newest Debian install."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    found.sort(key=lambda p: [int(n) for n in re.findall(r"\d+", p)], reverse=True)
    for path in found:
        if (Path(path).parent / "pg_ctl").exists():
            return Path(path).parent
    raise PostgresUnavailableError(INSTALL_HINT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _world_traversable(path: Path) -> bool:
    """Whether another user can reach ``path`` (every ancestor has the x bit for others)."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


class _Runner:
    """Runs the PostgreSQL programs, as ``nobody`` when we are root."""

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        self.user = pwd.getpwnam("nobody") if self.as_root else None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}

    def make_root(self) -> Path:
        base = Path(tempfile.gettempdir())
        if self.as_root and not _world_traversable(base):
            base = Path("/tmp")
        root = Path(tempfile.mkdtemp(prefix="mxn-pg-", dir=base))
        if self.user is not None:
            os.chown(root, self.user.pw_uid, self.user.pw_gid)
        return root

    def run(self, args: list[str], cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess:
        extra: dict[str, Any] = {}
        if self.user is not None:
            extra = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = self.env | {"HOME": str(cwd)}
        return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, **extra, **kwargs)


@contextmanager
def throwaway_postgres(attempts: int = 3) -> Iterator[str]:
    """Start a private server; yields the URL of its ``postgres`` database; stops and deletes it after."""
    bindir = find_bindir()
    runner = _Runner()
    root = runner.make_root()
    data = root / "data"
    try:
        init = runner.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
            cwd=root,
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        port = _start(runner, bindir, root, attempts)
        try:
            yield f"postgresql+psycopg://{USER}@127.0.0.1:{port}/postgres"
        finally:
            runner.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], cwd=root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _start(runner: _Runner, bindir: Path, root: Path, attempts: int) -> int:
    """Start the server on a free port (retrying when another process took it meanwhile)."""
    log = root / "server.log"
    for _ in range(attempts):
        port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        args = [str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(log), "-w", "-t", "60"]
        started = runner.run([*args, "-o", options, "start"], cwd=root)
        if started.returncode == 0:
            return port
    text = log.read_text() if log.exists() else ""
    raise RuntimeError(f"PostgreSQL did not start:\n{started.stdout}\n{started.stderr}\n{text[-3000:]}")


def _admin(server_url: str) -> psycopg.Connection:
    url = server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def create_database(server_url: str, name: str | None = None) -> str:
    """A new empty database on the server; returns its URL."""
    name = name or f"test_{uuid.uuid4().hex[:12]}"
    with _admin(server_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(server_url: str, database_url: str) -> None:
    """Drop a database made by :func:`create_database`, even when a test left connections open."""
    name = database_url.rsplit("/", 1)[1]
    with _admin(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
