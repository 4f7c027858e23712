#!/bin/sh
# The system (Debian) packages mxn needs besides Python 3.11: the one list of them, checked and installed
# here, so that `make demo` and `make test` work on a fresh machine and fail at once, before any slow step,
# where they cannot.
#
# Usage: sh scripts/system_packages.sh demo|test
#   demo   what `make demo` needs:  make opencv-doc
#   test   what `make test` needs:  make opencv-doc postgresql
#
# The packages, and what each is for:
#   make         GNU make, which runs the Makefile (make setup, make demo, make test).
#   opencv-doc   OpenCV's sample data: Megamind.avi and messi5.jpg, the faces of the demo's movie and of the
#                face tests (read by mxn/datasets/sample_faces.py). No pip wheel ships them. On other systems,
#                MXN_OPENCV_DATA=/a/folder holding both files replaces the package (this script and
#                mxn/datasets/sample_faces.py then look there only).
#   postgresql   PostgreSQL's server programs (initdb, pg_ctl): the tests start a throwaway cluster of
#                their own (tests/postgres.py). The demo does not need it.
# Not listed: ffmpeg. Nothing runs it; OpenCV's pip wheel carries its own FFmpeg libraries.
#
# Behaviour. The check looks at the files and commands present (cheap: no apt or dpkg query), as the
# programs that use them do.
#   nothing missing                 one line, exit 0;
#   missing, root with apt-get      apt-get update + apt-get install, then the check again;
#   missing otherwise (not root,    one message naming each missing package, what it is for and the
#   no apt-get, or still missing)   command to run; exit 1, having installed nothing.
# Data missing from a folder named by MXN_OPENCV_DATA is never "fixed" by installing opencv-doc: the
# programs would still read that folder, so it is reported instead.
set -u

OPENCV_DOC_DATA=/usr/share/doc/opencv-doc/examples/data
OPENCV_FILES="Megamind.avi messi5.jpg"

profile=${1:-}
case $profile in
    demo) packages="make opencv-doc" ;;
    test) packages="make opencv-doc postgresql" ;;
    *)
        echo "usage: sh scripts/system_packages.sh demo|test (the system packages of make demo or make test)" >&2
        exit 2
        ;;
esac

opencv_dir() {  # where OpenCV's sample data is looked for: MXN_OPENCV_DATA, else Debian's opencv-doc
    if [ -n "${MXN_OPENCV_DATA:-}" ]; then printf '%s\n' "$MXN_OPENCV_DATA"; else printf '%s\n' "$OPENCV_DOC_DATA"; fi
}

have_postgres() {  # initdb and pg_ctl on PATH, or in a Debian install (the places tests/postgres.py looks)
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$initdb" ] && [ -x "${initdb%/initdb}/pg_ctl" ] && return 0
    done
    return 1
}

have() {  # have PACKAGE: whether what PACKAGE provides is here
    case $1 in
        make) command -v make >/dev/null 2>&1 ;;
        postgresql) have_postgres ;;
        opencv-doc)
            dir=$(opencv_dir)
            for file in $OPENCV_FILES; do [ -f "$dir/$file" ] || return 1; done
            ;;
        *) return 1 ;;
    esac
}

missing_packages() {  # the packages of the profile that are not here, space-separated
    out=""
    for package in $packages; do have "$package" || out="$out $package"; done
    printf '%s\n' "${out# }"
}

purpose() {  # purpose PACKAGE: one line on what it is for and where it was looked for
    case $1 in
        make) echo "GNU make, which runs the Makefile (make setup, make demo, make test)" ;;
        opencv-doc)
            echo "OpenCV's sample data Megamind.avi and messi5.jpg, the faces of the demo's movie and of the"
            echo "                face tests (mxn/datasets/sample_faces.py); not found in $(opencv_dir)"
            if [ -n "${MXN_OPENCV_DATA:-}" ]; then
                echo "                (that folder is MXN_OPENCV_DATA: put both files there, or unset it to use opencv-doc)"
            fi
            ;;
        postgresql)
            echo "PostgreSQL's server programs initdb and pg_ctl: the tests start a throwaway cluster"
            echo "                (tests/postgres.py); not found on PATH nor in /usr/lib/postgresql/*/bin"
            ;;
    esac
}

elsewhere() {  # elsewhere PACKAGE: what PACKAGE provides, in plain words, for systems without apt
    case $1 in
        make) echo "  - GNU make" ;;
        opencv-doc)
            echo "  - OpenCV's sample data files Megamind.avi and messi5.jpg (samples/data in OpenCV's source,"
            echo "    github.com/opencv/opencv) in a folder, with MXN_OPENCV_DATA=/that/folder in the environment"
            ;;
        postgresql) echo "  - PostgreSQL's server programs: initdb and pg_ctl on PATH" ;;
    esac
}

missing=$(missing_packages)
if [ -z "$missing" ]; then
    echo "system packages for make $profile: present ($packages)"
    exit 0
fi

uid=$(id -u 2>/dev/null || echo unknown)
if [ "$uid" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    installable=""
    for package in $missing; do
        # data missing from MXN_OPENCV_DATA's folder: installing opencv-doc would not put it there
        [ "$package" = opencv-doc ] && [ -n "${MXN_OPENCV_DATA:-}" ] && continue
        installable="$installable $package"
    done
    installable=${installable# }
    if [ -n "$installable" ]; then
        echo "system packages for make $profile: installing $installable with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        # shellcheck disable=SC2086  # one word per package
        if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $installable >/dev/null; }; then
            echo "apt-get failed (its messages are above)" >&2
        fi
        missing=$(missing_packages)
        if [ -z "$missing" ]; then
            echo "system packages for make $profile: installed $installable"
            exit 0
        fi
        why="still missing after apt-get"
    else
        why="the folder MXN_OPENCV_DATA names lacks the data, which apt-get cannot fill"
    fi
elif [ "$uid" = 0 ]; then
    why="no apt-get here to install them with"
else
    why="not running as root, so nothing was installed"
fi

{
    echo "mxn: missing system packages for make $profile ($why):"
    for package in $missing; do
        printf '  %-12s  %s\n' "$package" "$(purpose "$package")"
    done
    echo "On Debian or Ubuntu, install them with:"
    echo "  sudo apt-get install -y --no-install-recommends $missing"
    echo "(run 'sudo apt-get update' first if apt cannot find them; 'make setup' run as root does both)."
    echo "On other systems, provide:"
    for package in $missing; do elsewhere "$package"; done
} >&2
exit 1
