# Two commands do all the set-up on a fresh machine:
#   make run    installs into .venv, trains the default model if there is none, starts API + worker
#   make test   installs into .venv and runs the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODERATION_DATA_DIR ?= ../shared/data
MODEL_DIR ?= var/models
PORT ?= 8000
export MODERATION_DATA_DIR

.PHONY: run test model install install-dev lint imports typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Trains the default model from the shared data and makes it active, unless one is active already.
model: install
	@if [ -f "$(MODEL_DIR)/active" ]; then \
		echo "model: $$(cat $(MODEL_DIR)/active) is active (delete $(MODEL_DIR)/active to retrain)"; \
	else \
		$(BIN)/python -m classifier train --data-dir "$(MODERATION_DATA_DIR)" --registry "$(MODEL_DIR)" --activate; \
	fi

run: model
	$(BIN)/python -m service run --port $(PORT)

# The import contracts run first (about a second): CI (.ci/run) calls `make test`, so a layering
# violation or an import cycle fails the build even when nobody ran `make lint`.
test: imports
	$(BIN)/python -m pytest

lint: imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The layers and the no-cycle rule, as import-linter contracts in pyproject.toml.
imports: install-dev
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy service classifier worker.py

bench: install-dev
	$(BIN)/python bench/scoring.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/compat_latency.py
	$(BIN)/python bench/coral_phase.py
	$(BIN)/python bench/moderation_page.py --gc-freeze

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
