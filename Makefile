# The project's verbs. `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi

.PHONY: run test unit api e2e soak bench bench-full lint fmt migrate seed clean venv test-deps

$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed requirements-test.txt
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-test.txt
	touch $@

venv: $(BIN)/.installed
test-deps: $(BIN)/.installed-test

migrate: venv
	$(BIN)/flask db upgrade

seed: migrate
	$(BIN)/flask seed-demo --if-empty

run: seed
	@echo "Lianhu is serving on http://127.0.0.1:8000  (console: /console/, API docs: /api/docs)"
	$(BIN)/gunicorn --workers 2 --bind 127.0.0.1:8000 --access-logfile - wsgi:app

test: test-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=20 tests

unit: test-deps
	$(BIN)/python -m pytest -q tests/unit

api: test-deps
	$(BIN)/python -m pytest -q tests/api

e2e: test-deps
	$(BIN)/python -m pytest -q tests/e2e

# A longer fleet simulation on real gunicorn (SOAK_ROUNDS rounds; DATABASE_URL picks the database).
SOAK_ROUNDS ?= 60
soak: test-deps
	LIANHU_SOAK=1 LIANHU_SOAK_ROUNDS=$(SOAK_ROUNDS) $(BIN)/python -m pytest -q -s tests/e2e/test_simulation.py

$(BIN)/.installed-bench: $(BIN)/.installed requirements-bench.txt
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-bench.txt
	touch $@

# BENCH_DATABASE_URL: a PostgreSQL database the run may wipe (default postgresql://postgres@127.0.0.1/lianhu_bench)
bench: $(BIN)/.installed-bench
	$(BIN)/python -m bench.run --short

bench-full: $(BIN)/.installed-bench
	$(BIN)/python -m bench.run --full

lint: test-deps
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

fmt: test-deps
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
