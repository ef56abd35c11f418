# Two commands for a newcomer: `make run` (serve the demo on http://127.0.0.1:8000) and `make test`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HYPOTHESIS_PROFILE ?= ci
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help .venv run test lint format clean

help:
	@echo "make run     create .venv, migrate, seed demo data, serve on http://127.0.0.1:8000"
	@echo "make test    run the test suite (HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE))"
	@echo "make lint    ruff check, ruff format --check, mypy, lint-imports"
	@echo "make format  ruff format and ruff check --fix"
	@echo "make clean   remove .venv, var/ and caches"

# The virtualenv is (re)installed whenever pyproject.toml, or the set of top-level packages
# (an editable install maps only the packages it saw), is newer than the stamp file.
.venv: $(STAMP)

$(STAMP): pyproject.toml $(wildcard */__init__.py)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

run: .venv
	mkdir -p var
	$(BIN)/loyalty migrate
	$(BIN)/loyalty seed-demo
	$(BIN)/loyalty serve

test: .venv
	HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE) $(BIN)/pytest $(PYTEST_ARGS)

lint: .venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: .venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis \
		.import_linter_cache .grimp_cache
	rm -rf *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
