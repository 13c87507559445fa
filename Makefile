# Two commands for a new user:  `make repro` (set up + run the whole study)  and  `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup repro test bench clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps --quiet -e .   # the `lossbench` command (editable: runs this checkout's code)
	touch $@

repro: setup
	PATH="$(abspath $(BIN)):$$PATH" dvc repro

test: setup
	$(BIN)/python -m pytest

bench: setup
	for script in bench/[!_]*.py; do $(BIN)/python $$script || exit 1; done

clean-venv:
	rm -rf $(VENV)
