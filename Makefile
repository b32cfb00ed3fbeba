# Two commands do all set-up on a fresh clone:  `make demo`  and  `make test`.
# Both create or refresh .venv/ and install pocketvision into it.
#
# torch is installed first and pinned (TORCH_SPEC); the rest of the install runs under a
# constraint file that holds torch at the installed version, so no other requirement can
# swap it for a different (multi-GB CUDA) build. Elsewhere, pick your own build, e.g.
#   make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,export,web,inspect,track,fuzz,search
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
PYTEST_ARGS ?=
# `make test` leaves out the tests marked `extended` (a capability a default test already
# covers, at more families / formats / sizes); `make test-all` runs every test.
PYTEST_MARK ?= not extended

.PHONY: venv data web-assets test-tools demo test test-all lint typecheck pytest fuzz fuzz-long api-fuzz bench models-table parity clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/constraints.txt
	PIP_CONSTRAINT=$(CURDIR)/$(VENV)/constraints.txt $(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

# Fashion-MNIST from Debian's dataset-fashion-mnist package, when apt is there and the files are not.
FMNIST_DEB := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
data:
	@if [ ! -e $(FMNIST_DEB) ] && [ -z "$$POCKETVISION_DATA" ] && command -v apt-get >/dev/null; then \
	  echo "Installing Fashion-MNIST from Debian (dataset-fashion-mnist)"; \
	  { apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }; } || \
	  echo "Could not install dataset-fashion-mnist; Fashion-MNIST steps fall back or skip (see README)"; \
	fi

# The browser page's onnxruntime-web (WASM), from the npm registry; nothing is fetched at run time.
WEB_FRONTEND := src/pocketvision/web/frontend
WEB_VENDOR := src/pocketvision/web/static/vendor/ort.wasm.min.js
web-assets: $(WEB_VENDOR)
$(WEB_VENDOR): $(WEB_FRONTEND)/package.json $(WEB_FRONTEND)/package-lock.json $(WEB_FRONTEND)/copy-vendor.mjs
	cd $(WEB_FRONTEND) && npm ci --ignore-scripts --no-audit --no-fund && npm run --silent vendor

# Debian's Chromium for the browser tests (Playwright drives it; no browser download) and
# Debian's kotlin compiler for the generated Android code's compile test, and Debian's
# PostgreSQL server for the search test where two workers share one study (started by the test).
test-tools:
	@for pkg in chromium:/usr/bin/chromium kotlin:/usr/bin/kotlinc postgresql:/usr/lib/postgresql/15/bin/initdb; do \
	  name=$${pkg%%:*}; bin=$${pkg#*:}; \
	  if [ ! -x $$bin ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's $$name for the tests"; \
	    { apt-get install -y -qq $$name >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $$name >/dev/null 2>&1; }; } || \
	    echo "Could not install $$name; the tests that need it will skip"; \
	  fi; \
	done

demo: venv data web-assets
	$(VENV)/bin/pocketvision demo

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks scripts fuzz
	$(VENV)/bin/ruff format --check src tests benchmarks scripts fuzz

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv data web-assets test-tools
	$(PY) -m pytest -n 2 --dist loadgroup $(if $(PYTEST_MARK),-m "$(PYTEST_MARK)") $(PYTEST_ARGS)

# Coverage-guided fuzzing (atheris) of every loader of outside files, FUZZ_SECONDS per harness
# (7 harnesses; see README "Reliability"). A crash saves its input in fuzz/crashes/ and fails.
FUZZ_SECONDS ?= 30
fuzz: venv
	$(PY) fuzz/run.py --seconds $(FUZZ_SECONDS) --jobs 2

fuzz-long: venv
	$(PY) fuzz/run.py --seconds 600 --json benchmarks/results/fuzz_long.json

# The HTTP API fuzzed from its OpenAPI schema (schemathesis), API_FUZZ_EXAMPLES cases per
# operation and mode (make test runs 300); the counts go to test-artifacts/web/api_fuzz.json.
API_FUZZ_EXAMPLES ?= 3000
api-fuzz: venv
	POCKETVISION_API_FUZZ_EXAMPLES=$(API_FUZZ_EXAMPLES) $(PY) -m pytest tests/web/test_api_fuzz.py -q -s

test: lint typecheck pytest fuzz

test-all:
	$(MAKE) test PYTEST_MARK=

bench: venv data
	$(PY) benchmarks/run_all.py

models-table: venv
	$(PY) scripts/gen_model_table.py README.md --write

# Not part of `make test`: a second venv with torchvision and timm (about 5.5 GB) writes
# each weights-table row's checkpoint (random weights) and outputs; ours loads and compares.
PARITY_VENV ?= .parity-venv
PARITY_DIR ?= /tmp/pocketvision-parity
parity: venv
	test -x $(PARITY_VENV)/bin/python || $(PYTHON) -m venv $(PARITY_VENV)
	$(PARITY_VENV)/bin/python -c "import torchvision, timm, safetensors" 2>/dev/null || \
	  $(PARITY_VENV)/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1 timm safetensors
	$(PARITY_VENV)/bin/python benchmarks/parity.py --reference --dir $(PARITY_DIR)
	$(PY) benchmarks/parity.py --dir $(PARITY_DIR)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts \
	  $(WEB_FRONTEND)/node_modules src/pocketvision/web/static/vendor
