# quantkit: every set-up step lives here, so a fresh machine needs only `make demo` or `make test`.
#
# The full kit runs on CPython 3.10: paddlelite publishes no wheel for 3.11+.

VENV        := .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
PYTEST_ARGS ?=
RAPIDOCR    := rapidocr-paddle==1.4.5

# First Python 3.10 that really runs: $PYTHON310, python3.10 on PATH, then pyenv's builds.
PYTHON310 ?= $(shell for c in python3.10 $$(pyenv root 2>/dev/null)/versions/3.10*/bin/python3.10 \
                 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do \
                 if "$$c" -c 'import sys, venv; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then \
                     command -v "$$c" || echo "$$c"; break; fi; done)

.PHONY: demo test bench zoo venv side-envs clean help

help:
	@echo "make demo   set up .venv (Python 3.10) and run the PaddleSlim PTQ tutorial with quantkit"
	@echo "make test   set up .venv and run the test suite"
	@echo "make bench  set up .venv and run the benchmarks (pytest-benchmark, JSON in .benchmarks/)"
	@echo "make zoo    set up .venv and take every zoo.toml model through every target (zoo-output/)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON310)" ]; then \
	    echo "error: quantkit needs CPython 3.10 (paddlelite has no wheel for 3.11+) and none was found."; \
	    echo "  get one with pyenv:  pyenv install 3.10 && make PYTHON310=\$$(pyenv root)/versions/\$$(pyenv latest 3.10)/bin/python3.10 $(MAKECMDGOALS)"; \
	    echo "  or on Debian/Ubuntu: apt-get install python3.10 python3.10-venv (deadsnakes PPA on Ubuntu)"; \
	    echo "  or point make at it: make PYTHON310=/path/to/python3.10 $(MAKECMDGOALS)"; \
	    exit 1; fi
	@echo "using $(PYTHON310)"
	rm -rf $(VENV)
	$(PYTHON310) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet --no-deps $(RAPIDOCR)  # the PP-OCR classifier's model files
	$(PY) -m quantkit.environment_check
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/quantkit demo --out demo-output

# Paddle 3 in its own venv (checks PIR translations; ~1 min, ~850 MB, once per machine).
side-envs: $(STAMP)
	$(VENV)/bin/quantkit env install paddle3

test: $(STAMP) side-envs
	$(PY) -m pytest $(PYTEST_ARGS)

zoo: $(STAMP)
	$(VENV)/bin/quantkit zoo zoo.toml --out zoo-output --force

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	mkdir -p .benchmarks
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-group-by=group --benchmark-json=.benchmarks/latest.json

clean:
	rm -rf $(VENV) demo-output zoo-output .pytest_cache .benchmarks
