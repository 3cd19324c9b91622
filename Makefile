# `make demo` and `make test` each create .venv when it is missing, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A torch / torchvision pair whose torchvision ops load on a CPU-only machine; GPU machines may point this
# at an empty file (CONSTRAINTS=/dev/null) and keep the package's own version ranges.
CONSTRAINTS ?= constraints-cpu.txt
PYTEST_ARGS ?=

LINTED := gol launch analysis hydra_plugins tests

.PHONY: demo test test-fast lint install clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $@

# Exactly what a user types: the sweep lands in outputs/sweeps/demo; a second `make demo` finds its cells finished
# and prints the table again (remove that folder to train anew).
demo: $(STAMP)
	$(BIN)/gol-train experiment=demo
	$(BIN)/gol-tables --runs outputs/sweeps/demo --experiment demo --format md

# The house checks (configured in pyproject.toml): lint, format and types; `ruff format $(LINTED)` fixes the format.
lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not slurm" $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
