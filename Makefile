# `make demo` and `make test` set everything up on first use (a .venv beside this file).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo pretrained test test-fast test-slow-day lint install lab docs clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install everything

lab: $(STAMP)  ## install JupyterLab and open the notebooks with this project's environment as their kernel
	$(BIN)/python -m pip install --quiet -r requirements-lab.txt
	$(BIN)/jupyter lab notebooks  # the notebooks' python3 kernel is this .venv's Python

demo: $(STAMP)  ## the main job end to end, on CPU, in minutes
	$(BIN)/fetal-keras demo --out results/demo

pretrained: $(STAMP)  ## train the current recipe's localiser + segmenter pair (v3) from the simulator (about 2 h on 2 CPU cores)
	$(BIN)/fetal-keras pretrained --work-dir results/pretrained  # writes fetal_keras/weights/fetal_pair_sim_v3 (the packaged v1 and v2 stay)
	$(BIN)/fetal-keras pretrained --qc-figure ../shared/data/real_unlabelled/*.nii.gz --qc-csv ../shared/data/real_labelled/cohort.csv

docs: $(STAMP)  ## the documentation site into site/ (strict: a broken link or a missing page fails)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check fetal_keras tests benchmarks notebooks
	$(BIN)/ruff format --check fetal_keras tests benchmarks notebooks
	$(BIN)/lint-imports  # the layers of pyproject.toml: every import points down, no circles

test: lint  ## the whole test suite (what CI runs)
	$(BIN)/python -m pytest

test-fast: lint  ## the fast tests only
	$(BIN)/python -m pytest -m "not slow"

test-slow-day: $(STAMP)  ## the whole suite with one of the two cores kept busy by another process (must pass too)
	.ci/slow-day $(MAKE) test

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
