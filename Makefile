# The two commands in the README are `make demo` and `make test`; everything else is a helper.
# `make lint` (ruff + mypy, configured in pyproject.toml) runs in CI before the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install demo test lint clean-venv

$(BIN)/voiceprint: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# the GE2E weights' carrier (models/ge2e-resemblyzer): its code is never imported, so none of
	# its dependencies (librosa, webrtcvad) are needed
	$(BIN)/python -m pip install -q --no-deps Resemblyzer==0.1.4
	@touch $@

install: $(BIN)/voiceprint

demo: install
	$(BIN)/voiceprint demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check voiceprint scripts tests
	$(BIN)/mypy voiceprint scripts tests

clean-venv:
	rm -rf $(VENV)
