"""First contact: ``scripts/system_packages.sh`` and ``make setup`` on machines that lack a system package.

``make demo`` and ``make test`` must work, or stop at once with the command to run, on a fresh machine
that has only Python 3.11 and make. These tests run the script as such a machine would (``env -i``
with a minimal PATH) and as an unprivileged user (``nobody`` when the tests run as root), so that no
check can install anything for real: nothing here runs the real apt-get or creates a virtualenv. Root
with apt-get is played by stand-ins for ``id`` and ``apt-get`` on PATH.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from mxn.datasets import sample_faces as sample_data

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "system_packages.sh"
MINIMAL_PATH = "/usr/bin:/bin"
OPENCV_FILES = ("Megamind.avi", "messi5.jpg")
INSTALL = "sudo apt-get install -y --no-install-recommends"


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temp folder that ``nobody`` can read and write (pytest's own is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="mxn-setup-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _folder(path: Path, files: tuple[str, ...] = ()) -> Path:
    """A folder holding empty ``files`` (the script only checks that they exist)."""
    path.mkdir(mode=0o777)
    path.chmod(0o777)  # the mode of mkdir is masked by the umask
    for name in files:
        (path / name).touch()
    return path


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH | stat.S_IROTH)
    return path


def _unprivileged() -> list[str]:
    """The prefix that drops root for a command: as ``nobody``, with no supplementary groups."""
    if os.geteuid() != 0:
        return []
    nobody = pwd.getpwnam("nobody")
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
    return ["runuser", "-u", "nobody", "--"]


def _fresh(args: list[str], path: str = MINIMAL_PATH, **env: str) -> subprocess.CompletedProcess:
    """Run ``args`` unprivileged in an empty environment holding only PATH and ``env``."""
    settings = [f"{key}={value}" for key, value in {"PATH": path, **env}.items()]
    command = [*_unprivileged(), "/usr/bin/env", "-i", *settings, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)


def _script(profile: str, path: str = MINIMAL_PATH, **env: str) -> subprocess.CompletedProcess:
    return _fresh(["/bin/sh", str(SCRIPT), profile], path, **env)


def _postgres_path() -> str:
    """MINIMAL_PATH with PostgreSQL's programs on it: the tests' own server needs them too."""
    import postgres

    try:
        return f"{MINIMAL_PATH}:{postgres.find_bindir()}"
    except postgres.PostgresUnavailableError as err:
        pytest.fail(str(err), pytrace=False)


# -- the script ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["demo", "test"])
def test_present_exits_0_with_one_line(scratch: Path, profile: str) -> None:
    data = _folder(scratch / "opencv", OPENCV_FILES)
    done = _script(profile, _postgres_path(), MXN_OPENCV_DATA=str(data))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(done.stdout.splitlines()) == 1 and "present" in done.stdout


@pytest.mark.parametrize("profile", ["demo", "test"])
def test_missing_data_not_root_stops_with_the_command(scratch: Path, profile: str) -> None:
    empty = _folder(scratch / "empty")
    done = _script(profile, _postgres_path(), MXN_OPENCV_DATA=str(empty))
    assert done.returncode == 1
    assert done.stdout == ""  # no "installing ..."
    lines = done.stderr.splitlines()
    assert f"  {INSTALL} opencv-doc" in lines  # the only package missing, so the exact command
    assert f"make {profile}" in lines[0] and "not running as root" in lines[0]
    named = ("Megamind.avi", "messi5.jpg", str(empty), "MXN_OPENCV_DATA", "mxn/datasets/sample_faces.py")
    for words in named:
        assert words in done.stderr
    assert "Other systems" in done.stderr or "other systems" in done.stderr


def test_every_missing_package_is_named_with_its_purpose(scratch: Path) -> None:
    # a PATH with nothing on it: no make (and no id, so not root); PostgreSQL may still be found in
    # /usr/lib/postgresql, where Debian installs it
    nothing = _folder(scratch / "bin")
    done = _script("test", str(nothing), MXN_OPENCV_DATA=str(_folder(scratch / "empty")))
    assert done.returncode == 1
    command = next(line for line in done.stderr.splitlines() if INSTALL in line)
    named = command.split(INSTALL)[1].split()
    assert {"make", "opencv-doc"} <= set(named) <= {"make", "opencv-doc", "postgresql"}
    for package in named:
        assert any(line.startswith(f"  {package} ") for line in done.stderr.splitlines()), package
    assert "GNU make" in done.stderr


def test_demo_does_not_need_postgres(scratch: Path) -> None:
    nothing = _folder(scratch / "bin")  # initdb is not on this PATH, and may be nowhere
    make = _executable(nothing / "make", "#!/bin/sh\n")
    assert make.exists()
    done = _script("demo", str(nothing), MXN_OPENCV_DATA=str(_folder(scratch / "opencv", OPENCV_FILES)))
    assert done.returncode == 0, done.stderr


def test_unknown_profile_is_a_usage_error() -> None:
    done = _script("everything")
    assert done.returncode == 2 and "demo|test" in done.stderr


def _root_with_apt(scratch: Path, installs: bool) -> tuple[Path, Path]:
    """Stand-ins: ``id -u`` says 0; ``apt-get`` logs its calls (and, if ``installs``, provides make)."""
    bin_dir = _folder(scratch / "bin")
    log = scratch / "apt.log"
    _executable(bin_dir / "id", "#!/bin/sh\necho 0\n")
    chmod = shutil.which("chmod")  # PATH holds the stand-ins only
    provide = f'[ "$1" = install ] && printf "#!/bin/sh\\n" > {bin_dir}/make && {chmod} +x {bin_dir}/make\n'
    _executable(
        bin_dir / "apt-get",
        f'#!/bin/sh\necho "$DEBIAN_FRONTEND $*" >> {log}\n' + (provide if installs else "") + "exit 0\n",
    )
    return bin_dir, log


def test_root_installs_with_apt_get_then_checks_again(scratch: Path) -> None:
    bin_dir, log = _root_with_apt(scratch, installs=True)  # make is missing from this PATH
    done = _script("demo", str(bin_dir), MXN_OPENCV_DATA=str(_folder(scratch / "opencv", OPENCV_FILES)))
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == [
        "noninteractive update -qq",
        "noninteractive install -y -qq --no-install-recommends make",
    ]
    assert "installing make" in done.stdout


def test_root_reports_what_apt_get_did_not_install(scratch: Path) -> None:
    bin_dir, log = _root_with_apt(scratch, installs=False)
    done = _script("demo", str(bin_dir), MXN_OPENCV_DATA=str(_folder(scratch / "opencv", OPENCV_FILES)))
    assert done.returncode == 1
    assert "still missing after apt-get" in done.stderr and f"  {INSTALL} make" in done.stderr.splitlines()
    assert len(log.read_text().splitlines()) == 2  # one try, no loop


def test_root_does_not_install_opencv_doc_for_a_folder_of_its_own(scratch: Path) -> None:
    # installing opencv-doc would not fill the folder MXN_OPENCV_DATA names: report, do not install
    bin_dir, log = _root_with_apt(scratch, installs=True)
    _executable(bin_dir / "make", "#!/bin/sh\n")
    done = _script("demo", str(bin_dir), MXN_OPENCV_DATA=str(_folder(scratch / "empty")))
    assert done.returncode == 1
    assert not log.exists()
    assert "MXN_OPENCV_DATA" in done.stderr.splitlines()[0] and f"  {INSTALL} opencv-doc" in done.stderr


# -- make setup ----------------------------------------------------------------------------------------


def _python_stand_in(scratch: Path, version_ok: bool = True) -> tuple[Path, Path]:
    """A ``python3`` that logs its calls and passes (or fails) the version check, and does nothing else.

    So a Makefile that went on to create the venv would be caught in the log, fast, without a venv.
    """
    log = scratch / "python.log"
    check = "exit 0" if version_ok else "echo 'mxn needs Python 3.11, found 3.9.0' >&2; exit 1"
    python = _executable(
        scratch / "python3", f'#!/bin/sh\necho "$1" >> {log}\nif [ "$1" = -c ]; then {check}; fi\nexit 1\n'
    )
    return python, log


@pytest.mark.parametrize(("goal", "profile"), [("setup", "demo"), ("demo", "demo"), ("test", "test")])
def test_make_stops_before_the_venv(scratch: Path, goal: str, profile: str) -> None:
    if not shutil.which("make"):
        pytest.fail("make is not installed: sh scripts/system_packages.sh test installs it", pytrace=False)
    python, log = _python_stand_in(scratch)
    venv = scratch / "venv"
    empty = _folder(scratch / "empty")
    done = _fresh(
        ["make", "--no-print-directory", goal, f"VENV={venv}", f"PYTHON={python}"],
        _postgres_path(),
        MXN_OPENCV_DATA=str(empty),
    )
    assert done.returncode != 0
    assert not venv.exists()
    assert log.read_text().split() == ["-c"]  # the Python check ran, first, and nothing after it
    assert f"missing system packages for make {profile}" in done.stderr
    assert f"  {INSTALL} opencv-doc" in done.stderr.splitlines()


def test_make_checks_python_first(scratch: Path) -> None:
    if not shutil.which("make"):
        pytest.fail("make is not installed: sh scripts/system_packages.sh test installs it", pytrace=False)
    python, log = _python_stand_in(scratch, version_ok=False)
    empty = _folder(scratch / "empty")
    done = _fresh(
        ["make", "setup", f"VENV={scratch / 'venv'}", f"PYTHON={python}"], MXN_OPENCV_DATA=str(empty)
    )
    assert done.returncode != 0
    assert "Python 3.11" in done.stderr and "system packages" not in done.stderr + done.stdout
    assert log.read_text().split() == ["-c"]


def test_ci_uses_the_script() -> None:
    code = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if not line.startswith("#")]
    assert code.index("sh scripts/system_packages.sh test") < code.index("make test")
    assert not [line for line in code if "apt-get" in line]  # the list of packages lives in one place


# -- mxn.datasets.sample_faces reads the same place ---------------------------------------------------------


def test_sample_data_honours_mxn_opencv_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MXN_OPENCV_DATA", str(tmp_path))
    assert sample_data.opencv_data_dir() == tmp_path
    with pytest.raises(FileNotFoundError) as missing:
        sample_data.messi()
    for words in (str(tmp_path / "messi5.jpg"), "MXN_OPENCV_DATA", f"{INSTALL} opencv-doc"):
        assert words in str(missing.value)
    image = np.zeros((30, 40, 3), np.uint8)
    image[:, :, 0] = 255  # red in RGB, so the BGR to RGB conversion shows
    assert cv2.imwrite(str(tmp_path / "messi5.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    read = sample_data.messi()
    assert read.shape == (30, 40, 3) and read[..., 0].min() > 200 and read[..., 2].max() < 50


def test_sample_data_default_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MXN_OPENCV_DATA", raising=False)
    assert sample_data.opencv_data_dir() == Path("/usr/share/doc/opencv-doc/examples/data")
    monkeypatch.setattr(sample_data, "OPENCV_DOC_DATA", tmp_path)
    assert sample_data.opencv_data_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="opencv-doc") as missing:
        sample_data.megamind_frames()
    assert "MXN_OPENCV_DATA" in str(missing.value)  # the other way is named too
