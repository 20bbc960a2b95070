# Every target bootstraps .venv from pyproject.toml by itself, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench server services services-down clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/pixmart demo

server: $(STAMP)
	$(BIN)/pixmart-server serve

lint: $(STAMP)
	$(BIN)/ruff check protocol backend tui tests
	$(BIN)/mypy protocol backend tui tests
	$(BIN)/lint-imports

# The suite runs with an empty user cache dir, so no converted model or other cached state from
# an earlier run can hide a test that only passes warm; pip keeps its own cache (the wheel tests
# install into throwaway venvs). The second pass runs every server-backed integration and fault
# test again on PostgreSQL (started by the fixtures when `make services` has not).
test: lint
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	PIP_CACHE_DIR="$${PIP_CACHE_DIR:-$$($(BIN)/python -m pip cache dir 2>/dev/null)}" \
	XDG_CACHE_HOME="$$tmp" $(BIN)/pytest -q && \
	PIXMART_TEST_ENGINE=postgres XDG_CACHE_HOME="$$tmp" $(BIN)/pytest -q tests/integration tests/fault

# PostgreSQL with pgvector on loopback, for running servers on the second engine; settings land
# in .services.env (PIXMART_DATABASE=...). Idempotent. The tests start it themselves if needed.
services: $(STAMP)
	$(BIN)/python -m tests.support.services up

services-down: $(STAMP)
	$(BIN)/python -m tests.support.services down

bench: $(STAMP)
	$(BIN)/python -m tests.bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
