# The two commands in the README are `make demo` and `make test`; everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install demo test clean-venv

$(BIN)/voiceprint: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

install: $(BIN)/voiceprint

demo: install
	$(BIN)/voiceprint demo

test: install
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
