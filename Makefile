# CryptoLakehouse developer tasks. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CLI := $(BIN)/cryptolake
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup venv jars demo airflow test test-fast test-stack-down local-up local-down local-status e2e-kind generate clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: venv jars ## Create the venv with every extra and fetch the Spark jars (once; cached in ~/.m2)

venv: $(BIN)/.installed
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Where local Spark reads its jar list: CRYPTOLAKE_SPARK_CLASSPATH, default as in cryptolake/settings.py
SPARK_CLASSPATH := $(or $(CRYPTOLAKE_SPARK_CLASSPATH),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/cryptolake/spark-classpath.txt)
jars: $(SPARK_CLASSPATH) ## Resolve Delta, hadoop-aws + AWS SDK and the JDBC driver with Maven (list in ~/.cache)
$(SPARK_CLASSPATH): spark_apps/pom.xml
	mkdir -p $(dir $@)
	mvn -B -q -f spark_apps/pom.xml dependency:build-classpath \
	    -Dmdep.outputFile=$@ -Dmdep.includeScope=runtime

demo: setup ## Run the embedded default end to end (starts the local stack)
	$(CLI) demo

test: setup ## Run the whole test suite against real PostgreSQL, S3 server and Spark
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: setup ## Tests without Spark and without building the wheel
	$(BIN)/pytest -m 'not spark and not wheel' $(PYTEST_ARGS)

test-stack-down: ## Stop the stack the tests start (it stays up between test runs)
	$(CLI) local --state-dir .local/test-stack down

.PHONY: kube-bins
kube-bins: ## Build kube-apiserver, kubectl and etcd for tests/kubernetes (once; ~11 min cold; ~/.cache/cryptolake/kube)
	tests/kubernetes/apiserver/build.sh

local-up: setup ## Start the local stack (PostgreSQL, S3 server) on loopback
	$(CLI) local up

local-down: ## Stop the local stack
	$(CLI) local down

airflow: setup ## Airflow 3 standalone on the local stack with the repo's DAGs (UI on http://127.0.0.1:18280)
	$(CLI) local airflow

local-status: ## Show the local stack
	$(CLI) local status

generate: ## Render dags/ and manifests/spark/ from cryptolake/pipeline.yaml (a test fails when they drift)
	$(BIN)/python -m cryptolake.orchestration.render

e2e-kind: ## End-to-end on a kind cluster (needs Docker; skips where there is none)
	@if ! docker info >/dev/null 2>&1; then \
	    echo "e2e-kind skipped: no Docker engine on this machine (docker info failed); run it where Docker runs"; \
	    exit 0; \
	fi; \
	echo "e2e-kind: the chart and images arrive with the Kubernetes issue; nothing to run yet"; exit 1

clean: local-down ## Stop the stack and remove local state, the lake and build output
	rm -rf .local .lake build *.egg-info

bench-extract: setup ## Extraction benchmarks: peak memory at 2k/10k coins and 100/800 exchanges, rate-limited wall time
	for case in listings-2000 listings-10000 assets-100 assets-800 rate; do $(BIN)/python bench/extract_bench.py $$case; done

sandbox-contract: ## Regenerate tests/sandbox/contract.json from the API reference (CMC_REFERENCE_DIR)
	$(BIN)/python tests/sandbox/contract.py

bench-transform: setup ## Transform benchmark: one new day's runs with 1 vs 60 days of silver history (ratio)
	$(BIN)/python bench/transform_bench.py --history-days 60

bench-load: setup ## Load benchmark: 1M fact_crypto_market rows through the full load path vs plain COPY (ratio)
	$(BIN)/python bench/load_bench.py --coins 5000 --snapshots 200 --repeat 2
