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

# Opt-in real-pairs suite (tests/real_pairs): other packages' own models, tiny configs, random init.
# Its own venv, so the main one keeps its pins (torchvision needs torch 2.14.1).
VENV_REAL ?= .venv-real
PY_REAL := $(VENV_REAL)/bin/python
PIP_REAL := $(PY_REAL) -m pip -q --disable-pip-version-check

$(VENV_REAL)/.installed: pyproject.toml
	python3 -m venv $(VENV_REAL)
	$(PIP_REAL) install torch==2.14.1 torchvision==0.29.1 timm transformers paddlepaddle==3.3.1 paddle2onnx \
		onnx onnxruntime networkx pyyaml rich pytest hypothesis
	$(PIP_REAL) install --no-deps paddleclas x2paddle
	$(PIP_REAL) install six requests paddleformers
	$(PIP_REAL) install -e . --no-deps
	touch $@

.PHONY: real-pairs real-pairs-score real-pairs-calibrated real-pairs-offline
real-pairs: $(VENV_REAL)/.installed
	$(PY_REAL) -m pytest -q -m real_pairs tests/real_pairs

real-pairs-score: $(VENV_REAL)/.installed
	$(PY_REAL) -m tests.real_pairs.score

# compare_mode="calibrated" on every pair: AdamW verdicts, planted faults, bfloat16, the margin (hours on 2 cores)
real-pairs-calibrated: $(VENV_REAL)/.installed
	$(PY_REAL) -m tests.real_pairs.score --calibrated

# offline = live on the hand-written pairs (Recorder per framework in its own process; PAIRS="llama qwen2" to choose)
real-pairs-offline: $(VENV_REAL)/.installed
	$(PY_REAL) -m tests.real_pairs.score --offline $(PAIRS)

# Opt-in real sizes: the Qwen2-0.5B-shaped decoder pair and ResNet-50 at batch 32, each part in a
# fresh process (bare, suggest_layer_map, compare, Recorder + compare_runs). Heavy: needs ~16 GB free and
# half an hour on 2 cores; results in benchmarks/results/large_*.json (summary: benchmarks/README.md).
.PHONY: bench-large
bench-large: $(VENV_REAL)/.installed
	PYTHONPATH=. $(PY_REAL) benchmarks/bench_large.py --case qwen2 --profile
	PYTHONPATH=. $(PY_REAL) benchmarks/bench_large.py --case resnet50 --batch 32 --profile
