# The README's commands. Everything installs into .venv; the CPU torch goes in first so that
# the package's loose `torch>=2.8` requirement is already satisfied (override: make test TORCH=...).
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: install test test-all demo bench lint clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -e ".[dev,tensorboard]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not gpu" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m monai_attn.demo --out demo_output

bench: $(STAMP)
	$(PY) benchmarks/run_all.py --out bench_output --docs docs/benchmarks.md

lint: $(STAMP)
	$(VENV)/bin/ruff check monai_attn tests benchmarks

clean:
	rm -rf $(VENV) demo_output bench_output .pytest_cache
