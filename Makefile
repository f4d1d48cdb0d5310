# One entry point for everything a developer or CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test check lint typecheck docs pytest serve bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
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

pytest: install
	$(BIN)/pytest

## A zero-copy static file server on 127.0.0.1:8000 for a folder of samples (Ctrl-C stops it).
serve: install
	$(BIN)/zcio serve --demo

## Benchmarks: measured, never asserted; one table with ratios against the anchors found
## (about 20 minutes). `zcio bench --help` for groups, --quick, --smoke and --out DIR.
bench: install
	$(BIN)/zcio bench all

clean:
	rm -rf $(VENV) site .mypy_cache .ruff_cache .hypothesis
