# Set-up and everyday commands. `make run` and `make test` are the two a new machine needs.
# `make run` installs what serving needs; `make test` adds the dev extra (pytest, Playwright, Ray, ...).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# pip shows what it collects and installs; a progress bar when it runs on a terminal.
PIP := $(BIN)/pip install --progress-bar on

.PHONY: check run setup setup-dev test lint clean-index

check: lint test

# Install (once), build the index if there is none, serve the UI and API on http://$(HOST):$(PORT)
run: setup
	$(BIN)/qa serve --host $(HOST) --port $(PORT)

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

# torch is installed first and pinned: that takes the local CPU build, where an unpinned
# torch pulled in by sentence-transformers would download a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	@echo "==> set-up 1/3: a virtual environment in $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	@echo "==> set-up 2/3: torch 2.13.0, CPU build (the largest download)"
	$(PIP) torch==2.13.0
	@echo "==> set-up 3/3: alliance-qa and what serving needs"
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	@echo "==> test set-up: the dev extra (pytest, Playwright, Ray, schemathesis, scikit-learn, import-linter)"
	$(PIP) -e ".[dev]"
	touch $@

test: setup-dev tests/node_modules/.installed
	$(BIN)/pytest

# axe-core for the browser tests' accessibility checks (tests/axe.py), pinned in tests/package-lock.json.
tests/node_modules/.installed: tests/package.json tests/package-lock.json
	@echo "==> test set-up: axe-core from npm"
	npm ci --prefix tests --no-audit --no-fund
	touch $@

# ruff, and the layers of src/qa (pyproject.toml's [tool.importlinter] contract).
lint: setup-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

clean-index:
	rm -rf index/gen-* index/CURRENT index/.build-* index/.lock
