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

# The exactly-once and round-trip tests once more, against the broker as a container (testcontainers).
KAFKA_CONTAINER_TESTS := tests/test_kafka_fixture.py tests/test_exactly_once.py \
	tests/test_ingest_job.py::test_round_trip_spark_and_hudi_rs_agree

test: setup ## the whole test suite (real Kafka, Spark, Hudi; the container tests when a Docker engine answers)
	$(BIN)/pytest $(PYTEST_ARGS)
	@if [ -z "$(PYTEST_ARGS)" ]; then $(MAKE) --no-print-directory test-kafka-container; fi

test-kafka-container: setup ## exactly-once and round-trip tests against the Kafka broker in a container
	@if docker info >/dev/null 2>&1 || [ "$$LOGLAKE_TEST_DOCKER" = require ]; then \
	  LOGLAKE_TEST_KAFKA=container $(BIN)/pytest $(KAFKA_CONTAINER_TESTS); \
	else \
	  echo "skipped the tests against a Kafka container: no Docker engine answers (deploy/local/dockerd.sh)"; \
	fi

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

.PHONY: help system setup demo test test-kafka-container lint docs bench clean
