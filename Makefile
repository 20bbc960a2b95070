# Every target bootstraps .venv from pyproject.toml by itself, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench server services services-down cluster cluster-down clean

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
# install into throwaway venvs). The vision tests convert the image model into one empty folder
# shared by every worker and pass, so it is converted about once per run. The second pass runs
# every server-backed integration and fault test again on PostgreSQL; the third runs the
# catalogue's picture tests on PostgreSQL with the pictures in the object store. PostgreSQL and
# SeaweedFS are started first (and stopped after, unless they were running already), so the
# passes' two workers (pytest-xdist, a test file each at a time) share them. The files are
# handed out in collection order, where the files marked long_running come first (see
# tests/conftest.py), not xdist's default of the files with most tests first, which left the
# longest file (the wheel's five tests) to start late and finish alone. The PostgreSQL pass
# names tests/fault first: its files are few and long (the fuzz, the revocations), and with
# tests/integration first they came last and ran on while the other worker sat idle.
PYTEST := $(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder
test: lint
	tmp=$$(mktemp -d) && \
	trap '$(BIN)/python -m tests.support.services test-down "$$tmp/started"; rm -rf "$$tmp"' EXIT && \
	$(BIN)/python -m tests.support.services test-up "$$tmp/started" && \
	export PIP_CACHE_DIR="$${PIP_CACHE_DIR:-$$($(BIN)/python -m pip cache dir 2>/dev/null)}" && \
	export XDG_CACHE_HOME="$$tmp/cache" PIXMART_TEST_MODEL_CACHE="$$tmp/models" && \
	$(PYTEST) && \
	PIXMART_TEST_ENGINE=postgres $(PYTEST) tests/fault tests/integration && \
	PIXMART_TEST_ENGINE=postgres PIXMART_TEST_BLOBS=s3 $(PYTEST) \
		tests/integration/test_catalogue_upload.py tests/integration/test_catalogue_access.py \
		tests/integration/test_catalogue_items.py tests/integration/test_at_rest.py

# PostgreSQL with pgvector and SeaweedFS (S3) on loopback, for running servers on the second
# engine and the object store; settings land in .services.env (PIXMART_DATABASE=...,
# PIXMART_BLOBS=... and its AWS_* key pair). Idempotent. The tests start them themselves if needed.
services: $(STAMP)
	$(BIN)/python -m tests.support.services up

services-down: $(STAMP)
	$(BIN)/python -m tests.support.cluster down
	$(BIN)/python -m tests.support.services down

# N pixmart-server instances (default 2) on loopback, sharing the PostgreSQL of `make services`
# and one certificate, behind haproxy (installed with apt if missing); .services.env gets
# PIXMART_LB=wss://... Idempotent: running again with another N resizes the cluster.
N ?= 2
cluster: services
	$(BIN)/python -m tests.support.cluster up $(N)

cluster-down: $(STAMP)
	$(BIN)/python -m tests.support.cluster down

bench: $(STAMP)
	$(BIN)/python -m tests.bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
