# One entry point for everything a developer or CI runs.
#
# `make test` uses python3 and .venv. Another interpreter gets a venv of its own:
# `make test PYTHON=python3.13` builds and uses .venv-3.13 (`.ci/run` runs 3.11, 3.12 and 3.13).
# `make test-lowest` runs the suite with every dependency at its declared floor (.venv-lowest,
# or .venv-lowest-3.13 with PYTHON=python3.13).
PYTHON ?= python3
ifeq ($(origin PYTHON),file)
SUFFIX :=
else
SUFFIX := -$(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
endif
VENV   ?= .venv$(SUFFIX)
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# What the venv gets: zcio with every extra and the test tools; test-lowest changes both.
INSTALL     ?= -e '.[dev]'
CONSTRAINTS ?=

.PHONY: install test check lint typecheck docs pytest serve bench clean test-lowest

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(INSTALL) $(CONSTRAINTS)
	touch $(STAMP)

install: $(STAMP)

## The README's test command: tests, types, lint and the strict docs build.
test: install lint typecheck docs pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

docs: install
	$(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site

## PYTEST_ARGS: passed on to pytest (`.ci/run` gives 3.12 `-m "not load and not slow"`).
## JOBS: pytest-xdist workers, one per CPU by default (`JOBS=0`: all in one process). Most
## tests wait on sockets, threads and child processes, so two workers on two cores halve the
## time; each worker is its own process, with its own fds, counters and pipe pool.
PYTEST_ARGS ?=
JOBS ?= auto
pytest: install
	$(BIN)/pytest -n $(JOBS) --dist worksteal $(PYTEST_ARGS)

## The test suite with every dependency zcio declares at its floor (anyio, trio, uvloop,
## starlette, uvicorn, httptools, matplotlib), in .venv-lowest(-3.x): see .ci/lowest.py.
LOWEST := .venv-lowest$(SUFFIX)
$(LOWEST)/constraints.txt $(LOWEST)/requirements.txt &: pyproject.toml .ci/lowest.py
	mkdir -p $(LOWEST)
	$(PYTHON) .ci/lowest.py constraints pyproject.toml > $(LOWEST)/constraints.txt
	$(PYTHON) .ci/lowest.py requirements pyproject.toml > $(LOWEST)/requirements.txt

test-lowest: $(LOWEST)/constraints.txt $(LOWEST)/requirements.txt
	$(MAKE) pytest VENV=$(LOWEST) INSTALL='-r $(LOWEST)/requirements.txt' \
	    CONSTRAINTS='-c $(LOWEST)/constraints.txt'

## A zero-copy static file server on 127.0.0.1:8000 for a folder of samples (Ctrl-C stops it).
serve: install
	$(BIN)/zcio serve --demo

## Benchmarks: measured, never asserted; one table with ratios against the anchors found
## (about 20 minutes). `zcio bench --help` for groups, --quick, --smoke and --out DIR.
bench: install
	$(BIN)/zcio bench all

clean:
	rm -rf .venv .venv-* site .mypy_cache .ruff_cache .hypothesis
