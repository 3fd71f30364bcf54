# The README's commands. Everything installs into .venv; the CPU torch goes in first so that
# the package's loose `torch>=2.8` requirement is already satisfied (override: make test TORCH=...).
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DEMO_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: install test test-all demo bench lint clean

# The installer is uv when it can be had (same packages, several times faster: a fresh .venv took 25 s with uv
# against 170 s with pip on 2 cores), else pip; USE_UV=0 forces pip. uv does not read pip's configuration, so
# the pip settings given as environment variables (a local wheel folder with the CPU torch, another index)
# are handed on to it.
USE_UV ?= 1
# uv (unlike pip) leaves bytecode compilation to the first import, which never writes it back where
# PYTHONDONTWRITEBYTECODE is set (as on our CI machines): every Python process, and the tests start dozens,
# then compiled torch and MONAI again (18 s instead of 8 s per import). Compile once at install time.
export UV_COMPILE_BYTECODE ?= 1
ifdef PIP_FIND_LINKS
export UV_FIND_LINKS ?= $(PIP_FIND_LINKS)
endif
ifdef PIP_INDEX_URL
export UV_INDEX_URL ?= $(PIP_INDEX_URL)
endif
ifdef PIP_EXTRA_INDEX_URL
export UV_EXTRA_INDEX_URL ?= $(PIP_EXTRA_INDEX_URL)
endif

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	if [ "$(USE_UV)" = 1 ]; then $(PY) -m pip install -q uv || echo "uv unavailable: installing with pip"; fi
	if [ "$(USE_UV)" = 1 ] && [ -x $(VENV)/bin/uv ] && $(VENV)/bin/uv pip install --python $(PY) "$(TORCH)" \
		&& $(VENV)/bin/uv pip install --python $(PY) -e ".[dev,tensorboard,onnx]"; then :; \
	else echo "installing with pip"; $(PY) -m pip install "$(TORCH)" && $(PY) -m pip install -e ".[dev,tensorboard,onnx]"; fi
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not gpu" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m monai_attn.demo --out demo_output $(DEMO_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py --out bench_output --docs docs/benchmarks.md

lint: $(STAMP)
	$(VENV)/bin/ruff check monai_attn tests benchmarks

clean:
	rm -rf $(VENV) demo_output bench_output .pytest_cache
