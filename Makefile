# event-pipeline developer entry points. `make demo` and `make test` work on a fresh machine:
# they create the virtualenv, install the packages, fetch the Kafka jars and start the broker.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WITH_KAFKA := $(PYTHON) scripts/with-kafka
PYTEST_ARGS ?=
ARGS ?=

.PHONY: install lint typecheck prometheus-tools test test-all unit demo kafka-up kafka-down clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# promtool and prometheus (Debian's package) for the alert-rule and dashboard tests.
prometheus-tools:
	scripts/ensure-prometheus

unit: install
	$(BIN)/pytest -m "not kafka and not slow" $(PYTEST_ARGS)

test: lint typecheck prometheus-tools
	$(WITH_KAFKA) -- $(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

test-all: lint typecheck prometheus-tools
	$(WITH_KAFKA) -- $(BIN)/pytest $(PYTEST_ARGS)

demo: install
	$(WITH_KAFKA) $(if $(filter --keep-running,$(ARGS)),--keep-running) -- $(BIN)/python -m pipeline.demo $(ARGS)

kafka-up:
	scripts/kafka-local up

kafka-down:
	scripts/kafka-local down

clean:
	-scripts/kafka-local down
	rm -rf $(VENV) .kafka-local .mypy_cache .pytest_cache .ruff_cache
