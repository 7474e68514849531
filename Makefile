# Everything runs from a virtualenv this Makefile creates (.venv), so a fresh clone
# needs only Python 3.11+ (and, for the browser tests, Debian's chromium, installed here).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test processes of `make test`: more on a bigger machine (`make test TEST_PROCESSES=4`), as
# long as PostgreSQL's max_connections (100 by default) covers their worker processes.
TEST_PROCESSES ?= 2

.PHONY: example example-pg test lint typecheck docs bench clean browser

# Targets run at once (make -j, or two shells on a fresh clone) share this step: the lock makes
# the second wait for the first, then find the venv up to date instead of installing over it.
$(STAMP): pyproject.toml
	flock $(VENV).lock sh -c 'test $(STAMP) -nt pyproject.toml || { \
	    $(PY) -m venv $(VENV) && \
	    $(BIN)/pip install -q --upgrade pip && \
	    $(BIN)/pip install -q -e ".[postgres,web,dev]" && \
	    touch $(STAMP); }'

example: $(STAMP)
	$(BIN)/python -m example_app

# The example on PostgreSQL, its jobs run by separate `activejob worker` processes.
EXAMPLE_PG ?= postgresql://postgres@127.0.0.1:5432/test
example-pg: $(STAMP)
	$(BIN)/python -m example_app.pg --database-url $(EXAMPLE_PG)

browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# The suite in two passes: most tests on one process per CPU (each test gets its own SQLite
# files, PostgreSQL database and ports, so they cannot meet), then the few marked `serial`,
# which stop or restart the PostgreSQL server the others use, alone. `pytest -q` alone runs
# everything in one process, slower (about 12 minutes here instead of 5).
test: $(STAMP) browser
	$(BIN)/ruff check activejob tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n $(TEST_PROCESSES) -m "not serial"
	$(BIN)/python -m pytest -q -m serial

lint: $(STAMP)
	$(BIN)/ruff check activejob tests

typecheck: $(STAMP)
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache
