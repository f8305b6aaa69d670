# genex: the two commands are `make run` and `make test` (see README.md).
# Both set up what is missing (Debian packages, .venv, the package) and are idempotent.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.genex-installed
REMOTES_STAMP := $(VENV)/.genex-remotes-installed
PROFILE ?= default
CORES ?= all
PYTEST_ARGS ?=
# the tiers run in parallel workers (pytest-xdist), one per core; a module stays on one worker
# (its fixtures are built once; tests/conftest.py: work_unit). PYTEST_WORKERS=0: in this process.
PYTEST_WORKERS ?= auto
PARALLEL := -n $(PYTEST_WORKERS) --no-loadscope-reorder
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help run test test-full test-paper-smoke test-slurm test-remotes setup system-packages repro push pull lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

run: setup  ## set up, then run the whole pipeline on the default (embedded) profile
	$(BIN)/snakemake --profile workflow/profiles/default --cores $(CORES) $(if $(filter-out default,$(PROFILE)),--configfile config/$(PROFILE).yaml)

test: setup  ## set up, then run the fast tier: unit tests, no DAG runs (tiny profile, CPU)
	$(BIN)/pytest $(PARALLEL) $(PYTEST_ARGS)

test-full: test $(REMOTES_STAMP)  ## the fast tier, then the DAG runs and slow tests (reruns, kill/resume, DVC, SSH/S3 remotes)
	$(BIN)/pytest -m '(slow or pipeline) and not slurm' $(PARALLEL) $(PYTEST_ARGS)

test-paper-smoke: setup  ## the paper profile's whole DAG on tiny fake datasets in the real layouts, on CPU (part of test-full)
	$(BIN)/pytest -m 'pipeline or slow' tests/pipeline/test_paper_smoke.py $(PYTEST_ARGS)

test-slurm: setup  ## the tiny DAG on a one-node SLURM cluster on localhost (root, Debian)
	$(BIN)/pytest -m slurm tests/pipeline/test_slurm.py $(PYTEST_ARGS)

test-remotes: setup $(REMOTES_STAMP)  ## DVC push/pull through SSH and S3 (emulated) servers started on 127.0.0.1
	$(BIN)/pytest -m remote tests/pipeline/test_remotes.py $(PYTEST_ARGS)

setup: system-packages $(STAMP)  ## install Debian packages, .venv and genex (skips what is done)

system-packages:  ## install the Debian packages that are missing (quick when none are)
	@scripts/install-system-packages.sh

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and pinned, with pip: the CPU build lies on this machine's disk, which pip's config
# points at and uv ignores (uv would fetch a CUDA build of several GB). The rest with uv, which
# installs in parallel: `.[test]` took 42.7 s with pip and 6.9 s with uv, the remotes extra
# 19.3 s and 1.8 s, the same versions but one (celery, for DVC's queue: 5.6.3 where pip took
# 5.7.0). Bytecode is compiled once at the end on every core (pip compiles on one: 48 s on
# 2 cores, compileall 29 s); a file that does not compile (a package's Python 3.12 test files)
# is left to the interpreter.
UV := $(BIN)/uv pip install --quiet --python $(BIN)/python
$(BIN)/uv: | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv==0.13.9

$(STAMP): pyproject.toml | $(BIN)/python $(BIN)/uv
	$(BIN)/python -m pip install --quiet --no-compile torch==2.13.0
	$(UV) -e '.[test]'
	# the pitch models genex explain is tested on; --no-deps: both declare torchaudio, which has
	# no release for the pinned torch and which neither needs for pitch (see genex/audio/zoo.py)
	$(UV) --no-deps torchcrepe==0.0.24 pesto-pitch==2.0.1 resampy==0.4.3
	$(BIN)/python -m compileall -q -q -j 0 $(VENV)/lib || true
	@touch $@

# the SSH/S3 clients and the S3 emulator only for `make test-remotes`
$(REMOTES_STAMP): pyproject.toml $(STAMP) | $(BIN)/uv
	$(UV) -e '.[test,remotes-test]'
	$(BIN)/python -m compileall -q -q -j 0 $(VENV)/lib || true
	@touch $@

# another profile than the default runs through DVC in its own folder, runs/<profile>/ (README)
RUN_STAGES := $(if $(filter-out default,$(PROFILE)),runs/$(PROFILE)/dvc.yaml)

repro: setup  ## run the pipeline through DVC (records params, hashes, metrics); PROFILE=paper: in runs/paper/
	$(if $(RUN_STAGES),mkdir -p runs/$(PROFILE) && PYTHONPATH=src $(BIN)/python workflow/lib/dvc_stages.py --profile $(PROFILE) > $(RUN_STAGES).new && mv $(RUN_STAGES).new $(RUN_STAGES))
	$(BIN)/dvc repro $(RUN_STAGES)

push: setup  ## push versioned data, models and results to the DVC remote
	$(BIN)/dvc push $(RUN_STAGES)

pull: setup  ## fetch versioned outputs from the DVC remote and mark them current for Snakemake
	scripts/pull.sh $(if $(filter-out default,$(PROFILE)),--profile $(PROFILE))

lint: setup  ## snakemake's linter
	$(BIN)/snakemake --lint

clean:  ## remove pipeline outputs (not the venv, not the DVC cache)
	rm -rf resources results logs .snakemake
