# The two commands of the README: `make repro` (pipeline) and `make test` (tests). Both set up first.
SHELL := /bin/bash
VENV ?= .venv
PROFILE ?= default
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Real word crops for evaluation only (never training), when present beside the repo (developer machines, CI):
# iiit5k_test_dev (half of IIIT5K's test split) is the primary dev set, iiit5k_train the old one.
REAL_SETS ?= iiit5k_test_dev iiit5k_train
REAL_DIR ?= ../shared/data

.PHONY: setup params repro smoke test test-fast prdiff clean-venv

setup:
	@bash scripts/setup.sh

# Compose conf/ (+ PROFILE) into params.yaml, then run the DAG; DVC skips stages whose inputs are unchanged.
# Real word crops, when present beside the repo, are converted into data/real/ so `evaluate` reports on them.
params: setup
	wordrec-compose profile=$(PROFILE)

repro: params
	@for s in $(REAL_SETS); do \
	  if [ -f "$(REAL_DIR)/$$s/labels.txt" ] && [ ! -f data/real/$$s/data.mdb ]; then \
	    wordrec-byod $(REAL_DIR)/$$s data/real/$$s; fi; done
	python -m wordrec.pipeline.dvcstate .
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
