# Two commands do all the set-up on a fresh machine:
#   make repro   create .venv, install, run the DVC pipeline on the embedded digits data set
#   make test    create .venv, install, run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# Stage commands in dvc.yaml call `python`: make it the venv's.
export PATH := $(BIN):$(PATH)
export PYTHONPATH := $(CURDIR)
# CPU-only machines: keep torch on the cores we have, no telemetry.
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: install repro test bench clean

install: $(VENV)/.installed

# torch/torchvision are pinned in pyproject.toml to the releases this machine serves from disk.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

repro: install
	@git rev-parse --git-dir >/dev/null 2>&1 || { echo "make repro needs a git checkout (dvc)"; exit 1; }
	# dvc repro with one Prefect server shared by the stage processes (flows/server.py)
	time $(BIN)/python -m flows repro
	@grep -v '^!\[' reports/evaluate.md

# Two pytest workers (pytest-xdist), a test file each at a time (module fixtures, ordered tests),
# the longest files first (tests/conftest.py), one thread each: 2 cores, not oversubscribed.
test: install
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder

bench: install
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf data/prepared data/synthetic models dvclive plots metrics
