# Two commands on a fresh machine with Python 3.11:
#   make demo   -> virtualenv, install, run the demo pipeline (train + forecast)
#   make test   -> virtualenv, install, run the test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deepcast-installed
DEMO_OUT ?= forecasts/demo_forecast.csv
# test processes (pytest-xdist): 3 on a 2-core machine keep both cores busy while a worker
# waits for a server or a subprocess; a test file stays on one worker so that its module
# fixtures (a trained store, a server) are built once; the slowest files start first
# (tests/conftest.py)
TEST_WORKERS ?= 3

.PHONY: demo test lint audit install clean browser

# The pinned set is installed with uv (about 25 s from an empty cache, against 2 min with pip);
# where uv cannot be installed or fails, pip installs the same pins. --compile-bytecode: as
# pip does, so that no process compiles TensorFlow & co. on import (where
# PYTHONDONTWRITEBYTECODE is set, every process would: imports took 22 s instead of 10 s).
UV_VERSION ?= 0.13.8

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	{ $(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) && \
	  $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python \
	    -c constraints.txt -e ".[dev]"; } || \
	{ $(BIN)/python -m pip install --quiet --upgrade pip && \
	  $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"; }
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	mkdir -p $(dir $(DEMO_OUT))
	$(BIN)/deepcast train pipelines/demo.yaml
	$(BIN)/deepcast forecast pipelines/demo.yaml --output $(DEMO_OUT)

# Chromium for the tests that open the MLflow and Prefect UIs (tests/integration/test_ui.py):
# Debian's package where this user can install it (root with apt-get, ~25 s); elsewhere those
# tests are skipped, saying why. CHROMIUM=/path/to/chrome uses another build.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  test -n "$$CHROMIUM" || \
	  { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
	    { timeout 300 apt-get update -qq >/dev/null && \
	      DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq chromium \
	        >/dev/null; } ; } || \
	  echo "note: Chromium not installed: the UI tests will be skipped (install chromium)"

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30

lint: $(STAMP)
	$(BIN)/ruff check .

audit: $(STAMP)  # known vulnerabilities in the pinned set (needs PyPI's JSON API)
	grep -v '^#' constraints.txt > $(VENV)/pins.txt
	$(BIN)/pip-audit -r $(VENV)/pins.txt --no-deps --disable-pip --strict --progress-spinner off

clean:
	rm -rf $(VENV) mlruns/mlflow.db mlruns/artifacts mlruns/validation forecasts
