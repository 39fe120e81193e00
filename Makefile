# One-command set-up, test and demo. Every target is idempotent.
SHELL := /bin/bash
PYTHON ?= python3
# On a GPU server pass VENV_FLAGS=--system-site-packages so the venv sees the
# server's own torch; setup then installs no torch at all.
VENV_FLAGS ?=
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test test-ts test-py typecheck demo

setup: node_modules/.installed $(VENV)/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --engine-strict --no-audit --no-fund
	touch $@

$(VENV)/.installed: requirements.txt python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e python
	touch $@

typecheck: setup
	npx tsc --noEmit

test-py: setup
	$(PY) -m pytest -q test/python

test-ts: setup
	npx vitest run

test: typecheck test-py test-ts
