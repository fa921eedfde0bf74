# Xinqiao: two commands do all set-up on a fresh machine (Python 3.11+ and make).
#   make run   create .venv, install, migrate, load the demo district, serve GraphQL + GraphiQL
#   make test  install and run the whole suite (SQLite always; PostgreSQL when reachable)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export XINQIAO_DATABASE_URL ?= sqlite+aiosqlite:///var/xinqiao.db
DEMO_PERSONS ?= 2000

.PHONY: run test install lint typecheck schema demo clean bench

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	mkdir -p var
	$(BIN)/xinqiao keys init
	$(BIN)/xinqiao db upgrade
	$(BIN)/xinqiao demo --persons $(DEMO_PERSONS) --if-empty
	@echo "GraphiQL: http://127.0.0.1:8000/graphql  (token: $(BIN)/xinqiao token grid.donghu)"
	$(BIN)/xinqiao serve

# The suite runs in a random order (pytest-random-order; the seed is printed at the end of the run):
# PYTEST_ORDER=--random-order-seed=N repeats an order, PYTEST_ORDER= keeps the files' order.
PYTEST_ORDER ?= --random-order

test: $(STAMP)
	$(BIN)/ruff check api authz audit domain migrations tests
	$(BIN)/ruff format --check api authz audit domain migrations tests
	$(BIN)/mypy
	$(BIN)/xinqiao schema export --check
	$(BIN)/xinqiao policy matrix --check
	$(BIN)/python -m pytest -q -p no:cacheprovider -p random_order $(PYTEST_ORDER)

lint: $(STAMP)
	$(BIN)/ruff check api authz audit domain migrations tests
	$(BIN)/lint-imports

# Paths and strictness: [tool.mypy] in pyproject.toml.
typecheck: $(STAMP)
	$(BIN)/mypy

schema: $(STAMP)
	$(BIN)/xinqiao schema export

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis .mypy_cache

# The suite (tests/bench/suite.py) writes var/bench/suite.json and docs/performance.md. On a
# quiet 2-core VM each backend x scale takes about 4-5 min to measure; demo generation adds about
# 30 s per 100k persons (1M: about 6 min per backend); the whole default run about 45 min.
# For a quick run: make bench BENCH_SCALES=10000.
BENCH_SCALES   ?= 10000,100000,1000000
BENCH_BACKENDS ?= sqlite$(shell $(PYTHON) -c "import socket; socket.create_connection(('127.0.0.1', 5432), 0.5)" 2>/dev/null && echo ,postgresql)

bench: $(STAMP)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[bench]'
	$(BIN)/python -m tests.bench.privacy_cost --persons 10000 --runs 100
	$(BIN)/python -m tests.bench.audit_cost --persons 10000 --runs 100 --events 200000
	$(BIN)/python -m tests.bench.decrypt_cost
	$(BIN)/python -m tests.bench.suite --scales $(BENCH_SCALES) --backends $(BENCH_BACKENDS) --out var/bench
