# The two commands: `make run` and `make test`. Everything installs into .venv.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MSMV_HOME ?= $(CURDIR)/data

.PHONY: install run test lint browser clean-data bench

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

browser:
	@bash scripts/ensure_chromium.sh

run: install
	@bash scripts/run.sh

lint: install
	$(VENV)/bin/ruff check .

test: install browser lint
	$(VENV)/bin/python -m pytest

bench: install
	@for b in benchmarks/*.py; do n=$$(basename $$b .py); [ "$$n" = __init__ ] && continue; \
	  echo "== $$n"; $(PY) -m benchmarks.$$n || exit 1; done

clean-data:
	rm -rf data
