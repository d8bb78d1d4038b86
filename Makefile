# The course's two set-up commands are `make lab` and `make test`; each creates the
# pinned environment in .venv first when it is missing or out of date.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.8
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/sanitize.cfg
# pytest-xdist: one worker per CPU core (at most 4: each holds a JAX runtime); --dist loadscope keeps a
# test file, and a notebook's cells, in one worker, in order. TEST_WORKERS=0 runs everything in one process.
PARALLEL := -n $(or $(TEST_WORKERS),auto) --maxprocesses 4 --dist loadscope
export UV_COMPILE_BYTECODE := 1

.PHONY: help env lab test unit nbtest browser-deps notebooks site student bench accelerator-report lock clean

help:
	@echo "make lab        open the course in JupyterLab (creates .venv first)"
	@echo "make test       unit tests + every notebook under nbval in smoke mode"
	@echo "make notebooks  execute all notebooks in full mode, in place, refreshing figures/"
	@echo "make site       build the course website from the committed notebooks into _build/site/html"
	@echo "make student    the students' copy: every notebook without its solutions, in _build/student/notebooks"
	@echo "make accelerator-report  tests, notebooks, the cold full series and timings on this machine's GPU/TPU"
	@echo "make bench      run benchmarks/ (results go in BENCHMARKS.md by hand)"
	@echo "make lock       re-resolve requirements.in into requirements.lock"

env: $(STAMP)

# Python 3.11-3.14: $(PYTHON) if given (make lab PYTHON=python3.13), else the first supported one found
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || { py=$$(PYTHON="$(PYTHON)" bash scripts/find_python.sh) && echo "creating $(VENV) with $$py" && $$py -m venv $(VENV); }
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $@

# As root (Docker, cloud GPU boxes) JupyterLab needs --allow-root; with no display (a headless
# server) it starts no browser and prints the URL to open; the course's settings
# (scripts/lab_overrides.json) turn off the news pop-up. LAB_ARGS passes more options.
LAB_FLAGS = $(if $(filter 0,$(shell id -u)),--allow-root) $(if $(or $(DISPLAY),$(filter Darwin,$(shell uname -s))),,--no-browser)
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings/overrides.json

lab: $(STAMP) $(LAB_SETTINGS)
	$(BIN)/jupyter lab $(LAB_FLAGS) $(LAB_ARGS) notebooks/00_setup_and_tour.ipynb

$(LAB_SETTINGS): scripts/lab_overrides.json $(STAMP)
	@mkdir -p $(dir $@) && cp $< $@

# Everything CI runs. VAE_SMOKE=1 shrinks training so the series runs in minutes.
test: $(STAMP) browser-deps
	VAE_SMOKE=1 $(BIN)/python -m pytest -q $(PARALLEL) --durations=20 $(NBVAL) tests notebooks

unit: $(STAMP)
	VAE_SMOKE=1 $(BIN)/python -m pytest -q $(PARALLEL) tests -m "not browser"

nbtest: $(STAMP)
	VAE_SMOKE=1 $(BIN)/python -m pytest -q $(PARALLEL) $(NBVAL) notebooks

# Debian's chromium for the real-browser test (root installs it; otherwise that
# test skips and says why).
browser-deps:
	@bash scripts/install_chromium.sh

notebooks: $(STAMP)
	VAE_SMOKE=0 $(BIN)/python scripts/run_notebooks.py notebooks/*.ipynb

# The website: the committed, executed notebooks rendered by Sphinx + MyST-NB (no re-execution).
site: $(STAMP)
	$(BIN)/python scripts/build_site.py

# On a GPU/TPU machine, with the Python whose JAX sees the accelerator (often a preinstalled
# one: it needs no pins, only the versions scripts/accelerator_report.py lists).
ACCEL_PYTHON ?= python3
accelerator-report:
	$(ACCEL_PYTHON) scripts/accelerator_report.py $(ACCEL_ARGS)

# Solution cells (tagged "solution") removed; the exercise skeletons and their checkers stay.
student: $(STAMP)
	$(BIN)/python scripts/make_student.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

lock:
	uv pip compile -q --python-version 3.11 --no-header --no-annotate requirements.in -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache _build
