# The two commands a newcomer needs (see README.md), on a machine with only Python 3.11 and make:
#   make demo   set up, then run the main job on the embedded defaults; needs the system packages
#               of scripts/system_packages.sh's demo profile (opencv-doc: the faces of the demo's movie)
#   make test   set up, then run the linters and the whole test suite; needs the test profile
#               (opencv-doc, and postgresql: the tests start a throwaway PostgreSQL cluster)
# make setup, which every target but clean runs first, checks in this order, stopping at the first
# failure so that nothing slow runs before it: Python 3.11; the system packages of the goal's profile
# (test for make test, demo otherwise; as root with apt-get it installs what is missing, otherwise it
# names the missing packages and the command to install them); then it creates $(VENV) once.
PYTHON  ?= python3
VENV    ?= .venv
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.installed
PROFILE ?= $(if $(filter test,$(MAKECMDGOALS)),test,demo)

.PHONY: setup python-version system-packages demo test lint bench lock clean

setup: $(STAMP)

python-version:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "mxn needs Python 3.11, found " + sys.version.split()[0]'

system-packages: python-version
	@sh scripts/system_packages.sh $(PROFILE)

# order-only: the packages are checked on every run, but a check does not make .venv out of date
$(STAMP): pyproject.toml constraints.txt | system-packages
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/mxn demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -n 2 --dist loadfile   # two workers, one test file each at a time (module fixtures built once)

bench: setup
	$(BIN)/python scripts/bench_mxn.py --json out/bench_mxn.json

lock: setup
	$(BIN)/python -m pip freeze --exclude-editable > constraints.txt

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
