"""The house plan holds: imports run down the floors of docs/ARCHITECTURE.md, modules import each other
in no circle, everything installs under the one name ``mxn``, and the command line's surface is the
one it had before the house was rebuilt.

The import check reads the source (AST), so deferred imports inside functions and imports under
``TYPE_CHECKING`` count like the ones at the top of a file.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from cli_surface import help_tree, json_shapes

ROOT = Path(__file__).resolve().parents[1]

#: Where each installed package lives in the repository (pyproject.toml's package-dir says the same).
FOLDERS = {
    "mxn.storage": "storage",
    "mxn.ingest": "ingest",
    "mxn.query": "query",
    "mxn.facerec": "facerec",
    "mxn.reports": "reports",
}

#: The floors, bottom first (docs/ARCHITECTURE.md section 2). A module may import from its own
#: package and from packages on lower floors; packages on one floor import nothing of each other.
#: ``mxn`` is the network core: the modules directly in mxn/.
FLOORS = [
    ["mxn.media"],
    ["mxn.storage"],
    ["mxn"],
    ["mxn.ingest", "mxn.query", "mxn.facerec"],
    ["mxn.datasets", "mxn.reports"],
    ["mxn.api"],
    ["mxn.cli"],
]
FLOOR = {package: level for level, packages in enumerate(FLOORS) for package in packages}


def package_folders() -> dict[str, Path]:
    """Every installed package and its folder: the network core's subfolders are packages too."""
    folders = {name: ROOT / folder for name, folder in FOLDERS.items()}
    for init in sorted((ROOT / "mxn").rglob("__init__.py")):
        parts = init.parent.relative_to(ROOT).parts
        folders[".".join(parts)] = init.parent
    return folders


def library_sources() -> dict[str, str]:
    """Dotted module name (as installed) -> source, for every library module."""
    sources = {}
    for package, folder in package_folders().items():
        for path in sorted(folder.glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            sources[name] = path.read_text(encoding="utf-8")
    return sources


def floor_of(module: str) -> tuple[str, int]:
    """The package that owns ``module`` on the plan (its longest listed prefix) and its floor."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in FLOOR:
            return prefix, FLOOR[prefix]
    raise KeyError(f"{module} is on no floor of the plan: add its package to FLOORS")


def imported_modules(name: str, source: str, modules: set[str]) -> set[str]:
    """The library modules ``name`` imports anywhere in its source, relative imports resolved."""
    here = name if _is_package(name, modules) else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = here.split(".")
                stem = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # ``from package import module`` names the module; ``from module import name`` the module
            targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in modules else stem for a in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _is_package(name: str, modules: set[str]) -> bool:
    return any(other.startswith(name + ".") for other in modules)


def violations(sources: dict[str, str]) -> list[str]:
    """Every import that runs up or across a floor, and every circle of modules importing each other."""
    modules = set(sources)
    graph = {name: imported_modules(name, source, modules) for name, source in sources.items()}
    found = []
    for name, targets in sorted(graph.items()):
        own, level = floor_of(name)
        for target in sorted(targets):
            other, other_level = floor_of(target)
            if other != own and other_level >= level:
                found.append(f"{name} -> {target}: floor {other_level} ({other}) not below {level} ({own})")
    # circles: Tarjan's strongly connected components of the module graph
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            circle = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                circle.append(top)
                if top == node:
                    break
            if len(circle) > 1:
                found.append("circle: " + " -> ".join(sorted(circle)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_import_runs_down_the_floors_and_no_modules_import_each_other_in_a_circle():
    sources = library_sources()
    assert len(sources) > 80  # the whole library was read, not an empty folder
    assert violations(sources) == []


@pytest.mark.parametrize(
    ("planted", "source", "expected"),
    [
        # storage reaching up to a stage
        (
            "mxn.storage.planted",
            "from mxn.ingest.config import IngestConfig\n",
            "mxn.storage.planted -> mxn.ingest.config",
        ),
        # a deferred import inside a function counts too
        ("mxn.media.planted", "def f():\n    from mxn.cli import main\n", "mxn.media.planted -> mxn.cli"),
        # two stages on one floor
        ("mxn.query.planted", "from ..facerec import oracle\n", "mxn.query.planted -> mxn.facerec.oracle"),
        # the network core importing the Python API above it
        ("mxn.planted", "from .api import ingest\n", "mxn.planted -> mxn.api"),
    ],
)
def test_the_check_fails_on_a_planted_upward_import(planted, source, expected):
    real = library_sources()
    found = sorted(set(violations({**real, planted: source})) - set(violations(real)))
    assert len(found) == 1 and found[0].startswith(expected), found


def test_the_check_fails_on_a_planted_circle_inside_one_package():
    real = library_sources()
    planted = {
        "mxn.ingest.planted_a": "from .planted_b import x\n",
        "mxn.ingest.planted_b": "def f():\n    from .planted_a import y\n",
    }
    found = set(violations({**real, **planted})) - set(violations(real))
    assert found == {"circle: mxn.ingest.planted_a -> mxn.ingest.planted_b"}


def test_no_library_module_is_over_900_lines():
    lines = {name: source.count("\n") for name, source in library_sources().items()}
    assert {name: n for name, n in lines.items() if n > 900} == {}


def test_pyproject_installs_every_package_under_mxn_and_nothing_else():
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setup["package-dir"] == FOLDERS
    assert sorted(setup["packages"]) == sorted(package_folders())
    assert all(name == "mxn" or name.startswith("mxn.") for name in setup["packages"])


def test_no_module_imports_the_repository_folders_by_their_bare_names():
    """``import ingest`` would work from the repository root and nowhere else, and load a second copy."""
    bare = {name.split(".")[1] for name in FOLDERS}
    sources = dict(library_sources())
    for path in [*ROOT.glob("tests/*.py"), *ROOT.glob("scripts/**/*.py")]:
        sources[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    wrong = []
    for name, source in sources.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            wrong += [f"{name}: import {root}" for root in roots if root in bare]
    assert wrong == []


# -- the command line's surface, as it was before the house was rebuilt -------------------------------------

RECORDED = json.loads((ROOT / "tests" / "data" / "cli_surface.json").read_text())

#: Module paths the help text names, and where they moved (the only change the help may show).
MOVED_IN_HELP = {"mxn.demo.run_demo": "mxn.cli.demo.run_demo"}


def _moved(text: str) -> str:
    for old, new in MOVED_IN_HELP.items():
        text = text.replace(old, new)
    return text


def test_every_help_text_is_the_one_recorded_before_the_move():
    now = help_tree()
    assert sorted(now) == sorted(RECORDED["help"])
    for command, text in RECORDED["help"].items():
        assert now[command] == _moved(text), command


def test_every_json_file_has_the_shape_recorded_before_the_move(tmp_path, models):
    del models  # the default models are built (conftest) before the commands use them
    assert json_shapes(tmp_path) == RECORDED["json"]


# -- the wheel --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (a ``build/`` in the checkout could add stale files)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    skip = shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__", "out", "runs", "data")
    for name in ("pyproject.toml", "README.md", *FOLDERS.values(), "mxn"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": skip} if (ROOT / name).is_dir() else {}))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-qw", str(out), source],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("mxn-*.whl")
    return built


def test_the_wheel_holds_one_top_level_package_mxn(wheel):
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        names = set(archive.namelist())
    assert {top for top in tops if not top.endswith(".dist-info")} == {"mxn"}
    for package, folder in FOLDERS.items():
        for source in (ROOT / folder).glob("*.py"):
            assert f"{package.replace('.', '/')}/{source.name}" in names
    assert any(name.startswith("mxn/default_models/") and name.endswith(".mxn") for name in names)


def test_the_demo_runs_from_the_wheel_outside_the_repository(wheel, tmp_path):
    """A fresh environment with the wheel (dependencies borrowed from this one) runs ``mxn demo --quick``."""
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    # the dependencies, from this environment's site-packages: a plain path, so its editable mxn finder
    # (a .pth hook) is not loaded and only the wheel's mxn can be imported
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "numpy").is_dir())
    (site / "deps.pth").write_text(f"{deps}\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MXN_DB")}
    where = subprocess.run(
        [str(python), "-c", "import mxn.ingest, mxn.cli; print(mxn.ingest.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(site)
    demo = subprocess.run(
        [str(python), "-m", "mxn.cli", "demo", "--quick", "--out", "demo", "--json", "demo.json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    summary = json.loads((work / "demo.json").read_text())
    assert (work / "demo" / "index.html").is_file() and summary["queries"]
