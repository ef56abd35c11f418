# Two commands for a newcomer: `make run` (serve the demo on http://127.0.0.1:8000) and `make test`.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HYPOTHESIS_PROFILE ?= ci
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
BENCH_ARGS ?=
BENCH_STAMP := .venv-bench/.installed

.PHONY: help .venv run test lint format clean bench

help:
	@echo "make run     create .venv, migrate, seed demo data, serve on http://127.0.0.1:8000"
	@echo "make test    run the test suite (HYPOTHESIS_PROFILE=$(HYPOTHESIS_PROFILE))"
	@echo "make lint    ruff check, ruff format --check, mypy, lint-imports"
	@echo "make bench   benchmark suite on PostgreSQL + Redis, writes BENCHMARKS.md (~10-25 min; BENCH_ARGS=--quick)"
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

# The bench extra (the chart's matplotlib) in a virtualenv of its own: in the app's, matplotlib's
# numpy would be imported by advanced-alchemy into every worker (see bench/chart.py).
BENCH_TOOLS := .venv-bench
$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_TOOLS)/bin/python || $(PYTHON) -m venv $(BENCH_TOOLS)
	$(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"], sep="\n")' > $(BENCH_TOOLS)/requirements.txt
	$(BENCH_TOOLS)/bin/python -m pip install -r $(BENCH_TOOLS)/requirements.txt
	touch $(BENCH_STAMP)

# PostgreSQL and Redis are started as .ci/run starts them when they are down.
bench: $(STAMP) $(BENCH_STAMP)
	pg_isready -q -h 127.0.0.1 -p 5432 || \
		pg_ctlcluster --skip-systemctl-redirect "$$(ls /etc/postgresql)" main start
	[ "$$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ] || \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
	for i in $$(seq 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
	for i in $$(seq 60); do [ "$$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ] && break; sleep 1; done
	$(BIN)/python -m bench.suite $(BENCH_ARGS)

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
	rm -rf $(VENV) $(BENCH_TOOLS) var build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis \
		.import_linter_cache .grimp_cache
	rm -rf *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
