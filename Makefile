# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PDIFF   = $(VENV)/bin/pdiff
WORKSPACE ?= workspace

.PHONY: demo test test-reliability lint format bench install clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Stamps re-run the install when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

demo: $(VENV)/.installed
	MUJOCO_GL=egl $(PDIFF) -w $(WORKSPACE) demo

test: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check pdiff tests bench
	$(VENV)/bin/ruff format --check pdiff tests bench
	MUJOCO_GL=egl $(PY) -m pytest -q

# The whole kill/corruption matrices (about 10 minutes on 2 cores); `make test` runs a subset of them.
test-reliability: $(VENV)/.installed-dev
	MUJOCO_GL=egl $(PY) -m pytest -q tests/reliability -m "full_matrix or not full_matrix"

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check pdiff tests bench
	$(VENV)/bin/ruff format --check pdiff tests bench

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format pdiff tests bench
	$(VENV)/bin/ruff check --fix pdiff tests bench

bench: $(VENV)/.installed-dev
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	MUJOCO_GL=egl OMP_NUM_THREADS=1 $(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
