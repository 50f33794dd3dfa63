# `make run` and `make test` set up everything on a fresh machine (Python 3.10+ only).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup clean-venv

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

# The default pipeline, offline, on the synthetic sample.
run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m pytest -q

clean-venv:
	rm -rf $(VENV)
