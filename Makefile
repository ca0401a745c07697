# The two set-up commands: `make run` (demo on SQLite, tasks in-process) and `make test`
# (the whole suite on PostgreSQL and Redis). See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/loyalty
REDIS_URL ?= redis://127.0.0.1:6379/0
# Two workers on this two-core machine; PYTEST_ARGS narrows a run.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: run test install lint format schema bench clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

# Demo server with DEBUG on, on HOST:PORT (load_demo prints its URLs from DEMO_HOST and
# DEMO_PORT). Without DATABASE_URL it uses the SQLite file db.sqlite3; without
# CELERY_BROKER_URL Celery tasks run in-process.
run: export DEBUG = true
run: export DEMO_HOST = $(HOST)
run: export DEMO_PORT = $(PORT)
run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py load_demo
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: $(STAMP)
	@DATABASE_URL=$(DATABASE_URL) REDIS_URL=$(REDIS_URL) $(BIN)/python scripts/check_services.py
	DATABASE_URL=$(DATABASE_URL) REDIS_URL=$(REDIS_URL) $(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Writes the OpenAPI schema and fails on any warning.
schema: $(STAMP)
	SECRET_KEY=schema $(BIN)/python manage.py spectacular --validate --fail-on-warn --file openapi.yaml

bench: $(STAMP)
	@DATABASE_URL=$(DATABASE_URL) REDIS_URL=$(REDIS_URL) $(BIN)/python scripts/check_services.py
	@for script in bench/bench_*.py; do \
		echo "== $$script"; DATABASE_URL=$(DATABASE_URL) $(BIN)/python $$script || exit 1; \
	done

clean:
	rm -rf $(VENV) staticfiles db.sqlite3 db.sqlite3-wal db.sqlite3-shm
