# The two commands a new user runs: `make demo` and `make test`. Everything else is set-up they pull in.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.stamp-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
NPM_STAMP := regtest/node_modules/.stamp-$(shell cat regtest/package.json regtest/package-lock.json 2>/dev/null | sha1sum | cut -c1-12)

.PHONY: setup venv npm broker lint test test-unit demo bench clean

setup: venv npm broker

# Mosquitto on 127.0.0.1:1883: used as it is when running, installed and started where it can be.
broker:
	@regtest/ensure-broker

venv: $(VENV_STAMP)
$(VENV_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.stamp-*
	touch $@

npm: $(NPM_STAMP)
$(NPM_STAMP):
	@if [ -f regtest/package.json ]; then \
		cd regtest && npm ci --no-audit --no-fund --loglevel=error && cd .. && \
		rm -f regtest/node_modules/.stamp-* && touch $@; \
	fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# One line per test file as it finishes (its tier is the path), failures listed at the end, and pytest's own
# closing line ("N passed in …") last: CI reads it.
test: setup lint
	$(PY) -m pytest -p no:cacheprovider -r fE

test-unit: venv
	$(PY) -m pytest -q tests/unit

demo: setup
	$(PY) regtest/demo.py

# Figures, not pass/fail: one table on stdout, the same as JSON in bench/results/ (BENCH_MAX_SWAPS caps the curve).
bench: setup
	$(PY) bench/scale.py

clean:
	rm -rf $(VENV) regtest/node_modules .pytest_cache .mypy_cache .ruff_cache
