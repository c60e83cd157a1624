# Every target sets up .venv itself, so each works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)

.PHONY: demo test dev bench clean

$(BIN)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/monitoring-pipeline demo

test: $(BIN)/.installed
	$(BIN)/pytest -q

dev: $(BIN)/.installed
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000

bench: $(BIN)/.installed
	$(BIN)/monitoring-pipeline bench --rows $(or $(ROWS),1000000)

clean:
	rm -rf $(VENV) data .dagster_home
