# Every target sets up .venv itself, so each works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)
# A backfill's run of many hours records one "planned" event per asset instead of one per asset
# and hour (672 hours: 6,000 fewer SQLite writes). Dagster's trade-off: when such a run fails, its
# hours show as missing in the UI, not failed (the run, its alert and the backfill show the failure).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= true
PORT ?= 3000

.PHONY: demo test test-fast lint format dev bench clean

$(BIN)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/monitoring-pipeline demo

# Everything CI runs: lint, then every test (dagster dev with its daemon, the demo and the benchmark
# included): 4 min 37 s from a clean clone on 2 cores (lint 15 s, pytest 262 s). The tests are
# independent (each has its own temp folder, DuckDB file, Dagster instance and ports). Three workers
# on two cores: the first starts with the dagster dev test (~100 s), mostly waiting on its daemon
# (conftest.py puts it there), while the other two keep both cores busy.
test: lint
	$(BIN)/pytest -q -n 3

# Under a minute: the unit tests and a few real materializations per domain (ingest, metrics,
# evaluation, baselines, review, alerts). No daemon, webserver, benchmark or parallel processes,
# and not every edge case of every domain: those are marked slow, and `make test` runs them.
# Two workers: every test here keeps a core busy, and a third only made them share (34-38 s with
# two, 41-45 s with three).
test-fast: $(BIN)/.installed
	$(BIN)/pytest -q -n 2 -m "not slow"

lint: $(BIN)/.installed
	$(BIN)/ruff check monitoring_pipeline monitoring_pipeline_tests
	$(BIN)/ruff format --check monitoring_pipeline monitoring_pipeline_tests
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff check --fix monitoring_pipeline monitoring_pipeline_tests
	$(BIN)/ruff format monitoring_pipeline monitoring_pipeline_tests

dev: $(BIN)/.installed
	$(BIN)/dagster dev -h 127.0.0.1 -p $(PORT)

bench: $(BIN)/.installed
	$(BIN)/monitoring-pipeline bench --rows $(or $(ROWS),1000000)

clean:
	rm -rf $(VENV) data .dagster_home history schedules storage .logs_queue .nux .telemetry
