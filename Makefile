# Everything runs from a virtualenv this Makefile creates (.venv), so a fresh clone
# needs only Python 3.11+ (and, for the browser tests, Debian's chromium, installed here).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

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

test: $(STAMP) browser
	$(BIN)/ruff check activejob tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

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
