# Set-up and everyday commands. `make run` and `make test` are the two a new machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: check run setup test lint clean-index

check: lint test

# Install (once), build the index if there is none, serve the UI and API on http://$(HOST):$(PORT)
run: setup
	$(BIN)/qa serve --host $(HOST) --port $(PORT)

setup: $(VENV)/.installed

# torch is installed first and pinned: that takes the local CPU build, where an unpinned
# torch pulled in by sentence-transformers would download a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

test: setup tests/node_modules/.installed
	$(BIN)/pytest

# axe-core for the browser tests' accessibility checks (tests/axe.py), pinned in tests/package-lock.json.
tests/node_modules/.installed: tests/package.json tests/package-lock.json
	npm ci --prefix tests --no-audit --no-fund
	touch $@

lint: setup
	$(BIN)/ruff check src tests bench

clean-index:
	rm -rf index/gen-* index/CURRENT index/.build-* index/.lock
