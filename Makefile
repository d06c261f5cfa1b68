# hubbub — the two set-up commands are `make run` and `make test`; both build .venv on demand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
AUTOBAHN_VENV := .venv-autobahn

.PHONY: run test lint autobahn autobahn-venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hubbub serve

autobahn-venv: $(STAMP)
	bash scripts/autobahn-venv.sh $(AUTOBAHN_VENV)

test: $(STAMP) autobahn-venv
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/mypy src/hubbub

# The whole Autobahn|Testsuite (517 cases, two wstest/server pairs in parallel, ~7 minutes).
autobahn: $(STAMP) autobahn-venv
	$(BIN)/python scripts/autobahn.py --suite full

clean:
	rm -rf $(VENV) $(AUTOBAHN_VENV) reports
