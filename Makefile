# One command each: `make demo` sets up and runs the main job, `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup peers demo test ui bench clean reset

$(BIN)/nettrace: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(BIN)/nettrace

setup: $(BIN)/nettrace

# The `peers` extra (vectorbt==1.2.0, ~20 s once) so the test suite's vectorbt cross-check runs
# instead of skipping; the stamp keeps later runs from paying pip's resolver again.
$(VENV)/.peers-installed: $(BIN)/nettrace
	$(BIN)/pip install --quiet -e '.[dev,peers]'
	@touch $@

peers: $(VENV)/.peers-installed

demo: setup
	$(BIN)/nettrace demo

test: setup peers
	$(BIN)/ruff check .
	$(BIN)/pytest

ui: setup
	DAGSTER_HOME=$${NETTRACE_HOME:-$(CURDIR)/.nettrace}/dagster $(BIN)/nettrace init >/dev/null
	DAGSTER_HOME=$${NETTRACE_HOME:-$(CURDIR)/.nettrace}/dagster $(BIN)/dagster dev -w workspace.yaml

bench: setup peers
	$(BIN)/python benchmarks/bench_backtest.py
	$(BIN)/python benchmarks/cross_check.py
	$(BIN)/python benchmarks/bench_execution.py

# Start afresh: deletes NETTRACE_HOME's ledger, lake, audit logs and Dagster history after a y/N
# prompt (`make reset YES=1` skips it). Refuses a folder that is not a NetTrace home.
reset: setup
	$(BIN)/nettrace reset $(if $(YES),--yes)

clean:
	rm -rf .nettrace
