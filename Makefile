# The two commands of the README: `make repro` (pipeline) and `make test` (tests). Both set up first.
SHELL := /bin/bash
VENV ?= .venv
PROFILE ?= default
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
REAL ?= ../shared/data/iiit5k_train

.PHONY: setup params repro smoke test test-fast prdiff clean-venv

setup:
	@bash scripts/setup.sh

# Compose conf/ (+ PROFILE) into params.yaml, then run the DAG; DVC skips stages whose inputs are unchanged.
# Real word crops, when present beside the repo, are converted into data/real/ so `evaluate` reports on them.
params: setup
	wordrec-compose profile=$(PROFILE)

repro: params
	@if [ -f "$(REAL)/labels.txt" ] && [ ! -f data/real/iiit5k_train/data.mdb ]; then \
	  wordrec-byod $(REAL) data/real/iiit5k_train; fi
	dvc repro

smoke:
	$(MAKE) repro PROFILE=smoke

test: setup
	python -m pytest -q

test-fast: setup
	python -m pytest -q -m "not slow"

# What a CI job posts on a pull request: metric and param diffs against BASE, as Markdown.
BASE ?= origin/main
prdiff: setup
	wordrec-prdiff $(BASE)

clean-venv:
	rm -rf $(VENV)
