# The two commands in the README are `make demo` and `make test`; everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install java demo test clean-venv

$(BIN)/voiceprint: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# the GE2E weights' carrier (models/ge2e-resemblyzer): its code is never imported, so none of
	# its dependencies (librosa, webrtcvad) are needed
	$(BIN)/python -m pip install -q --no-deps Resemblyzer==0.1.4
	@touch $@

install: $(BIN)/voiceprint java

# Spark (`voiceprint calls features --engine spark`) runs on a Java 17 runtime; Debian ships it
java:
	@command -v java >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; }

demo: install
	$(BIN)/voiceprint demo

test: install
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
