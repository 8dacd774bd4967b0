# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PDIFF   = $(VENV)/bin/pdiff
WORKSPACE ?= workspace
PYTEST_ARGS ?=

.PHONY: demo results test test-reliability test-full-matrix test-random-order lint format bench install clean

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

# docs/results/README.md, the README's results table and docs/study.md's compute table from the published
# reports' report.json (no workspace, no simulator); a scaling page per family in docs/results/scaling/
# from its rungs, when there are any (docs/results/scaling/<family>/<rung>/report.json).
SCALING_FAMILIES = $(sort $(patsubst %/,%,$(dir $(patsubst %/,%,$(dir $(wildcard docs/results/scaling/*/*/report.json))))))
results: $(VENV)/.installed
	$(foreach family,$(SCALING_FAMILIES),$(PDIFF) report --scaling $(patsubst %/,%,$(dir $(wildcard $(family)/*/report.json))) --out $(family) &&) true
	$(PDIFF) report --summary docs/results --readme README.md --study docs/study.md

test: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check pdiff tests bench scripts
	$(VENV)/bin/ruff format --check pdiff tests bench scripts
	MUJOCO_GL=egl $(PY) -m pytest -q $(PYTEST_ARGS)

# The whole kill/corruption matrices (about 10 minutes on 2 cores); `make test` runs a subset of them.
test-reliability: $(VENV)/.installed-dev
	MUJOCO_GL=egl $(PY) -m pytest -q tests/reliability -m "full_matrix or not full_matrix" $(PYTEST_ARGS)

# Only the part of the matrices `make test` leaves out (.ci/run runs it after `make test`).
test-full-matrix: $(VENV)/.installed-dev
	MUJOCO_GL=egl $(PY) -m pytest -q -m full_matrix $(PYTEST_ARGS)

# The whole suite in a random order (tests must not depend on each other); SEED=n repeats an order.
test-random-order: $(VENV)/.installed-dev
	MUJOCO_GL=egl $(PY) -m pytest -q --random-order $(if $(SEED),--random-order-seed=$(SEED)) $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check pdiff tests bench scripts
	$(VENV)/bin/ruff format --check pdiff tests bench scripts

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format pdiff tests bench scripts
	$(VENV)/bin/ruff check --fix pdiff tests bench scripts

bench: $(VENV)/.installed-dev
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	MUJOCO_GL=egl OMP_NUM_THREADS=1 $(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
