# `make demo` and `make test` each create .venv when it is missing, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A torch / torchvision pair whose torchvision ops load on a CPU-only machine; GPU machines may point this
# at an empty file (CONSTRAINTS=/dev/null) and keep the package's own version ranges.
CONSTRAINTS ?= constraints-cpu.txt
DEMO_DIR ?= outputs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)
PYTEST_ARGS ?=

.PHONY: demo test test-fast install clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/gol-train experiment=demo hydra.sweep.dir=$(DEMO_DIR)
	$(BIN)/gol-tables --runs $(DEMO_DIR) --experiment demo --format md

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not slurm" $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
