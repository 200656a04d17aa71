# Firewatch: every entry point. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c requirements/constraints.txt
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: install install-serving demo test test-all bench train synth clean help bootstrap deploy destroy cost backfill replay

help:
	@echo "make demo      run the whole system locally (web app :8080, local S3 :4566, Lambda handler)"
	@echo "make test      install everything and run the test suite (includes cdk synth)"
	@echo "make bench     benchmark tables: LiteRT core vs TensorFlow/Keras baseline"
	@echo "make train     train the fire classifier on ../shared/datasets into a new runs/<run>/ folder"
	@echo "               (ARGS=\"--resume runs/<start>-incomplete\": go on with a run whose fit was stopped)"
	@echo "               (serve it with: .venv/bin/python -m training promote runs/<run>)"
	@echo "make synth     cdk synth the AWS app into cdk.out/"
	@echo "make bootstrap / deploy / destroy   the AWS app (CONTEXT=\"-c key=value ...\" REGION= PROFILE= ARGS= FORCE=1)"
	@echo "make cost      monthly and per-image cost of the AWS app for CONTEXT's settings"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip==25.3

# Serving + test tools: enough for the demo, without TensorFlow or the CDK.
$(VENV)/.serving: $(PY) requirements/serving.txt requirements/dev.txt requirements/constraints.txt
	$(PIP) -r requirements/serving.txt -r requirements/dev.txt
	touch $@

$(VENV)/.full: $(VENV)/.serving requirements.txt requirements/training.txt requirements/infra.txt
	$(PIP) -r requirements.txt
	touch $@

node_modules/.bin/cdk: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install-serving: $(VENV)/.serving

install: $(VENV)/.full node_modules/.bin/cdk
	scripts/install-browser.sh

demo: install-serving
	$(PY) -m demo

test: install
	$(PY) -m pytest

test-all: install
	$(PY) -m pytest
	$(PY) -m pytest -m slow -n 0  # load, memory and latency checks measure the machine: one at a time, alone

bench: install
	$(PY) -m benchmarks

# Training needs the Python packages only: no CDK CLI, no browser.
train: $(VENV)/.full
	$(PY) -m training $(ARGS)

synth: install
	npx cdk synth --quiet

# Operator commands (README, "Operations"): make backfill ARGS="--dry-run"
backfill: install-serving
	$(PY) -m ops backfill $(if $(REGION),--region $(REGION)) $(if $(PROFILE),--profile $(PROFILE)) $(ARGS)

replay: install-serving
	$(PY) -m ops replay $(if $(REGION),--region $(REGION)) $(if $(PROFILE),--profile $(PROFILE)) $(ARGS)

clean:
	rm -rf cdk.out .pytest_cache test-artifacts

# AWS: settings as CDK context (CONTEXT="-c envName=prod -c alertEmail=a@b.c"), REGION/PROFILE for the account,
# ARGS for the CDK CLI itself (e.g. ARGS="--require-approval never"). The logic lives in ops/deploy.py.
OPS_AWS = $(CONTEXT) $(if $(REGION),--region $(REGION)) $(if $(PROFILE),--profile $(PROFILE))

bootstrap: $(VENV)/.full node_modules/.bin/cdk
	$(PY) -m ops bootstrap $(OPS_AWS) -- $(ARGS)

deploy: $(VENV)/.full node_modules/.bin/cdk
	$(PY) -m ops deploy $(OPS_AWS) -- $(ARGS)

destroy: $(VENV)/.full node_modules/.bin/cdk
	$(PY) -m ops destroy $(OPS_AWS) $(if $(FORCE),--force) -- $(ARGS)

cost: $(VENV)/.full
	$(PY) -m ops cost $(CONTEXT) $(if $(REGION),--region $(REGION)) $(ARGS)
