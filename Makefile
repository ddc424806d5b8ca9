# Two commands for a newcomer: `make demo` and `make test` (both install what they need).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch pinned here, not in pyproject: 2.13.0 is the CPU build; a bare "torch" pulls CUDA.
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[test]"
	touch $@

.PHONY: install demo test lint bench
install: $(VENV)/.installed

demo: install
	$(PY) examples/demo.py

test: install
	$(PY) -m pytest -q tests

lint: install
	$(PY) -m ruff check padiff tests benchmarks examples
	$(PY) -m mypy

bench: install
	$(PY) -m pip -q install -e ".[bench]"
	$(PY) benchmarks/run_all.py
