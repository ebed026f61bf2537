# loglake: `make demo` runs the main job locally, `make test` runs the tests. `make help` lists all.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

system: ## Debian packages the jobs need (Java 17, Maven), installed only where missing
	@bash deploy/local/system-deps.sh

$(STAMP): pyproject.toml | system
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## venv, Python deps, Spark/Hudi/Kafka jars (cached in ~/.cache/loglake)
	$(BIN)/loglake setup

demo: setup ## local Kafka + synthetic logs + ingest into a Hudi MOR table + summary (REGISTRY=1: through a schema registry)
	$(BIN)/loglake demo $(if $(REGISTRY),--schema-registry)

# The session's broker is the broker process (LOGLAKE_TEST_KAFKA=container makes it the Kafka image
# instead); the image itself is proven by the container tests, which run where a Docker engine
# answers (.ci/run starts one). The container broker cost every Kafka test a third more time.
# Two pytest-xdist workers, a module each at a time (--dist loadfile: a module's table and fixtures are
# built once), each with its own Spark session and servers: most of a test waits on one busy core (a
# JVM starting, a driver planning a commit, a trigger), so two share the machine's two cores well.
TEST_WORKERS ?= 2
test: setup ## the whole test suite (real Kafka, Spark, Hudi; the container tests when a Docker engine answers)
	@docker info >/dev/null 2>&1 || [ "$$LOGLAKE_TEST_DOCKER" = require ] || \
	  echo "no Docker engine answers: the container tests skip"
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

lint: setup ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check loglake ingest gdpr compaction app devservers deploy bench
	$(BIN)/mypy

docs: $(STAMP) ## regenerate docs/settings.md and docs/metrics.md from the code
	$(BIN)/python -m app.reference

bench: setup ## ingest benchmark, prints JSON (MESSAGES=... to size it)
	$(BIN)/python -m bench.ingest $(if $(MESSAGES),--messages $(MESSAGES))

clean: ## remove the venv and caches (not the jar cache)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info

.PHONY: help system setup demo test lint docs bench clean
