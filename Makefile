# quantkit: every set-up step lives here, so a fresh machine needs only `make demo` or `make test`.
#
# The kit runs on CPython 3.10-3.12. Paddle Lite (CPython <= 3.10 wheels only) and Paddle 3
# live in side environments that `make side-envs` creates (quantkit/sideenv.py finds a
# CPython 3.10 for the Lite one: $QUANTKIT_PYTHON310, python3.10 on PATH, pyenv's builds).

VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
PYTEST_ARGS ?=
RAPIDOCR    := rapidocr-paddle==1.4.5

# The kit's Python: $PYTHON, else the machine's python3 if it is 3.10-3.12, else the first
# python3.11 / python3.12 / python3.10 that really runs (PATH, then pyenv's builds).
PYTHON ?= $(shell for c in python3 python3.11 python3.12 python3.10 \
                 $$(pyenv root 2>/dev/null)/versions/3.1[012]*/bin/python3 \
                 $$HOME/.pyenv/versions/3.1[012]*/bin/python3; do \
                 if "$$c" -c 'import sys, venv; assert (3, 10) <= sys.version_info[:2] <= (3, 12)' >/dev/null 2>&1; then \
                     command -v "$$c" || echo "$$c"; break; fi; done)

.PHONY: demo test bench zoo venv side-envs clean help

help:
	@echo "make demo   set up .venv (Python 3.10-3.12) and run the PaddleSlim PTQ tutorial with quantkit"
	@echo "make test   set up .venv and run the test suite"
	@echo "make bench  set up .venv and run the benchmarks (pytest-benchmark, JSON in .benchmarks/)"
	@echo "make zoo    set up .venv and take every zoo.toml model through every target (zoo-output/)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
	    echo "error: quantkit needs CPython 3.10, 3.11 or 3.12 and none was found."; \
	    echo "  get one with pyenv:  pyenv install 3.11, or apt-get install python3.11-venv"; \
	    echo "  or point make at it: make PYTHON=/path/to/python3.11 $(MAKECMDGOALS)"; \
	    exit 1; fi
	@echo "using $(PYTHON) ($$($(PYTHON) --version))"
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet --no-deps $(RAPIDOCR)  # the PP-OCR classifier's model files
	$(PY) -m quantkit.environment_check
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/quantkit demo --out demo-output

# Paddle Lite on CPython 3.10 (opt, the x86 .nb runtime; ~10 s, ~260 MB) and Paddle 3
# (PIR translation checks, paddle3-onednn-int8; ~1 min, ~850 MB), once per machine.
side-envs: $(STAMP)
	$(VENV)/bin/quantkit env install lite
	$(VENV)/bin/quantkit env install paddle3

test: $(STAMP) side-envs
	$(PY) -m pytest $(PYTEST_ARGS)

zoo: $(STAMP) side-envs
	$(VENV)/bin/quantkit zoo zoo.toml --out zoo-output --force

bench: $(STAMP) side-envs
	$(PY) -m pip install --quiet -e ".[bench]"
	mkdir -p .benchmarks
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-group-by=group --benchmark-json=.benchmarks/latest.json

clean:
	rm -rf $(VENV) demo-output zoo-output .pytest_cache .benchmarks
