# One-command set-up, test and demo. Every target is idempotent.
SHELL := /bin/bash
PYTHON ?= python3
# On a GPU server pass VENV_FLAGS=--system-site-packages so the venv sees the
# server's own torch; setup then installs no torch at all.
VENV_FLAGS ?=
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python

DEMO_DATA := data/fashion-mnist/READY.json
SAMPLE_PHOTOS := data/sample-photos/imagenet1k-classes.tsv

.PHONY: setup test test-ts test-py typecheck demo demo-pretrained demo-data sample-photos bench

# The demo data is fetched here too, but a machine without apt can still
# set up and test; only `make demo` then needs the files (see the message).
setup: node_modules/.installed $(VENV)/.installed
	@$(MAKE) --no-print-directory demo-data || echo "note: the demo data is missing (see above); everything except 'make demo' works"
	@$(MAKE) --no-print-directory sample-photos || echo "note: the sample photos are missing (see above); the test of the EfficientNet-Lite weights on them is skipped"

demo-data: $(DEMO_DATA)

$(DEMO_DATA): scripts/fetch-fashion-mnist.sh scripts/debian-package.sh scripts/prepare_fashion_mnist.py | $(VENV)/.installed
	scripts/fetch-fashion-mnist.sh
	$(PY) scripts/prepare_fashion_mnist.py
	touch $@

# A few real photos and the ImageNet class names, for the test of the converted EfficientNet-Lite weights.
sample-photos: $(SAMPLE_PHOTOS)

$(SAMPLE_PHOTOS): scripts/fetch-sample-photos.sh scripts/debian-package.sh
	scripts/fetch-sample-photos.sh

node_modules/.installed: package.json package-lock.json
	npm ci --engine-strict --no-audit --no-fund
	touch $@

$(VENV)/.installed: requirements.txt python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e python
	touch $@

# The whole recipe on Fashion-MNIST (configs/demo.yaml); the README shows what it prints.
demo: setup demo-data
	npx nfhm run configs/demo.yaml

# A pretrained EfficientNet-Lite0 adapted to Fashion-MNIST (configs/demo-pretrained.yaml; README).
demo-pretrained: setup demo-data
	npx nfhm run configs/demo-pretrained.yaml

typecheck: setup
	npx tsc --noEmit

test-py: setup
	$(PY) -m pytest -q test/python

test-ts: setup
	npx vitest run

test: typecheck test-py test-ts

# nfhm against plain-Python baselines; rewrites the tables in BENCHMARKS.md.
# About 30 minutes on this 2-core machine (9 before the pretrained encoder's two); never part of `make test`.
bench: setup
	npx tsx bench/run-all.ts
