# omm — `make help` lists the targets. Everything runs from a fresh clone:
# each target sets up what it needs (Python venv, Kafka jars) first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help
.PHONY: help setup browser prism demo test unit lint bench clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  \033[36mmake %-7s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP) ## Create the virtualenv and fetch the Kafka broker jars (Maven)
	$(BIN)/omm broker fetch

# The report tests (tests/integration/test_reports.py) open the HTML reports in a real
# headless browser: Debian's chromium. Installed with apt-get when missing, as root or
# through sudo; otherwise this stops saying what to run (the tests fail without it).
browser: ## Headless Chromium for the report tests (Debian's chromium; apt-get when missing)
	@if command -v chromium >/dev/null 2>&1; then \
	  echo "chromium: $$(command -v chromium)"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "needs Chromium for the report tests and found no apt-get: install chromium" \
	    "(or point OMM_TEST_CHROMIUM at one)"; exit 1; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif command -v sudo >/dev/null 2>&1; then \
	  sudo apt-get update -qq && \
	    sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
	  echo "needs Chromium for the report tests: apt-get install -y chromium (as root)"; exit 1; \
	fi
	@command -v chromium >/dev/null 2>&1 || { echo "chromium is still missing after apt-get"; exit 1; }

# Prism, Beam's portable runner (the Job API of the Flink and Spark job servers), for the
# runner tests (tests/integration/test_runners.py) and `omm run ... -- --runner=PrismRunner`.
# Built from the Go module proxy at the Beam version of requirements.lock, once, into the
# cache the Kafka jars use; omm/beam_runtime.py looks for it there. A file target: a second
# `make prism` is a stat. Built into a scratch directory and renamed, so an interrupted
# build never leaves half a binary where omm would run it.
BEAM_VERSION := $(shell sed -n 's/^apache-beam==//p' requirements.lock)
OMM_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/omm
PRISM := $(OMM_CACHE)/prism-$(BEAM_VERSION)/prism

prism: $(PRISM) ## Build Beam's Prism runner (Go; about 7 min the first time), cached

$(PRISM):
	@[ -n "$(BEAM_VERSION)" ] || { echo "no apache-beam==VERSION line in requirements.lock"; exit 1; }
	@command -v go >/dev/null || { echo "needs Go (1.24 or newer) to build Prism: install it, or put a prism binary at $@"; exit 1; }
	@echo "building Prism $(BEAM_VERSION) into $(@D) (several minutes on 2 cores, once)"
	@mkdir -p $(@D)
	@tmp=$$(mktemp -d $(@D)/.partial-XXXXXX) && \
	  trap 'rm -rf "$$tmp"' EXIT && \
	  GOBIN="$$tmp" go install github.com/apache/beam/sdks/v2/go/cmd/prism@v$(BEAM_VERSION) && \
	  mv "$$tmp/prism" $@
	@echo "prism: $@"

demo: setup ## The whole story on the embedded Kafka: broker, topics, feeds, ingest
	$(BIN)/omm demo

test: setup browser prism ## Unit + integration tests (starts its own Kafka broker on free ports)
	$(BIN)/pytest -q

unit: setup ## Only the tests that need neither Kafka nor Beam
	$(BIN)/pytest -q tests/unit

lint: setup ## ruff (lint and format) + mypy; CI runs it before the tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy omm pipelines schemas connectors

bench: setup ## Throughput beside the raw kafka-python limit (N=200000 by default)
	$(BIN)/python -m omm.bench --records $${N:-200000}

clean: ## Stop the embedded broker and delete local state (.omm) and caches
	-$(BIN)/omm broker stop
	rm -rf .omm .pytest_cache .mypy_cache .ruff_cache build *.egg-info
