# omm — `make help` lists the targets. Everything runs from a fresh clone:
# each target sets up what it needs (Python venv, Kafka jars) first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help
.PHONY: help setup demo test unit lint bench clean

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

demo: setup ## The whole story on the embedded Kafka: broker, topics, feeds, ingest
	$(BIN)/omm demo

test: setup ## Unit + integration tests (starts its own Kafka broker on free ports)
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
