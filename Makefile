# CryptoLakehouse developer tasks. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CLI := $(BIN)/cryptolake
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup venv jars demo airflow test test-fast reliability test-stack-down local-up local-down local-status kind-up images kind-load deploy e2e-kind generate clean measured-month bench-cycle bench-driver-memory

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
	$(BIN)/pytest -m 'not spark and not wheel and not reliability and not cluster' $(PYTEST_ARGS)

reliability: setup ## The fault matrix's slow half: S3/PostgreSQL outages, SIGKILLed steps, a full disk (docs/operations.md)
	$(BIN)/pytest -m reliability tests/reliability $(PYTEST_ARGS)

test-stack-down: ## Stop the stack the tests start (it stays up between test runs)
	$(CLI) local --state-dir .local/test-stack down

.PHONY: kube-bins
kube-bins: ## Build kube-apiserver, kubectl and etcd for tests/kubernetes (once; ~11 min cold; ~/.cache/cryptolake/kube)
	cluster/node/kube/build.sh

# ---- A real single-node cluster without Docker (cluster/node/, docs/kubernetes.md "A real node without Docker") -----
# Root only: kubelet, containerd, iptables. State in .local/cluster/ (CRYPTOLAKE_CLUSTER_DIR overrides it).
.PHONY: cluster-up cluster-down cluster-status cluster-kubeconfig
cluster-up: ## Build (cached) and start the single-node cluster: etcd, control plane, containerd, kubelet, kube-proxy, CoreDNS
	$(PYTHON) cluster/node/node.py up

cluster-down: ## Stop the single-node cluster and undo its iptables chains, mounts, addresses and routes
	$(PYTHON) cluster/node/node.py down

cluster-status: ## Each node component's state, the kubeconfig and the containerd socket
	$(PYTHON) cluster/node/node.py status

cluster-kubeconfig: ## Print the path of the node's admin kubeconfig (for KUBECONFIG; tests/e2e reads it here)
	@$(PYTHON) cluster/node/node.py kubeconfig

local-up: setup ## Start the local stack (PostgreSQL, S3 server, sandbox API, Spark History Server) on loopback
	$(CLI) local up

local-down: ## Stop the local stack
	$(CLI) local down

airflow: setup ## Airflow 3 standalone on the local stack with the repo's DAGs (UI on http://127.0.0.1:18280)
	$(CLI) local airflow

local-status: ## Show the local stack
	$(CLI) local status

generate: ## Render dags/ and manifests/spark/ from cryptolake/pipeline.yaml (a test fails when they drift)
	$(BIN)/python -m cryptolake.orchestration.render

# ---- Images for the node without Docker (cluster/images/images.py, docs/kubernetes-images.md) ----------------------
.PHONY: cluster-images cluster-images-import
cluster-images: venv ## Build the images with buildah (cached in ~/.cache/cryptolake/images) and import them into the node when it is up
	$(BIN)/python cluster/images/images.py up

cluster-images-import: venv ## Import the built images into the node's containerd (fails when the node is down)
	$(BIN)/python cluster/images/images.py import

# ---- Add-ons of the single-node cluster (cluster/node), built from the Go module proxy (docs/kubernetes.md) --------
# Each build is cached per version and recipe in ~/.cache/cryptolake/<thing>/<version> (cluster/lib/go-build.sh).
# The node's state directory as cluster/node/node.py finds it; helm of `make helm`, kubectl of the repo's Kubernetes
# pin (kube-bins), exported to the scripts.
CLUSTER_DIR ?= $(or $(CRYPTOLAKE_CLUSTER_DIR),$(CURDIR)/.local/cluster)
export HELM ?= $(shell cluster/helm/build.sh --print-dir)/bin/helm
export KUBECTL ?= $(shell cluster/node/kube/build.sh --print-dir)/bin/kubectl
JOBS_NS = $$($(BIN)/python -c 'from cryptolake.pipeline import default; print(default().kubernetes.namespace)')

.PHONY: cluster-addons helm spark-operator-bin spark-operator-image spark-operator network-policies-bin network-policies
helm: ## Build the helm CLI (Helm v4) from the Go module proxy (once; ~5 min cold; ~/.cache/cryptolake/helm)
	cluster/helm/build.sh

cluster-addons: network-policies spark-operator ## NetworkPolicy enforcement and the Spark Operator on the node (after cluster-up; idempotent)

spark-operator-bin: ## Build the Spark Operator binary (kubeflow/spark-operator, SPARK_OPERATOR_CHART_VERSION) from the Go module proxy
	cluster/spark-operator/build.sh

spark-operator-image: venv spark-operator-bin ## Build cryptolake-spark-operator (the Spark image + the operator) with buildah; import it when the node is up
	@socket=$(CLUSTER_DIR)/containerd/containerd.sock; \
	PYTHON=$(BIN)/python cluster/spark-operator/image.sh $$(test -S "$$socket" && echo "$$socket")

spark-operator: venv kube-bins helm spark-operator-bin ## Install the Spark Operator (CRDs, RBAC, webhook) into the node, --wait (idempotent)
	PYTHON=$(BIN)/python cluster/spark-operator/install.sh $(CLUSTER_DIR)/kubeconfig \
	    $(CLUSTER_DIR)/containerd/containerd.sock "$(JOBS_NS)" $(SPARK_OPERATOR_CHART_VERSION)

network-policies-bin: ## Build kube-network-policies (the NetworkPolicy agent kind runs) from the Go module proxy
	cluster/network-policies/build.sh

network-policies: kube-bins network-policies-bin ## Enforce NetworkPolicies on the node: kube-network-policies as a DaemonSet (idempotent)
	cluster/network-policies/install.sh $(CLUSTER_DIR)/kubeconfig $(CLUSTER_DIR)/containerd/containerd.sock

# The release on the node and the pipeline run by Airflow on this machine (docs/kubernetes.md, "A real node without
# Docker"). DEPLOY_ARGS: extra `helm upgrade --install` arguments (the e2e points CMC_BASE_URL at its sandbox).
.PHONY: cluster-deploy cluster-airflow e2e-cluster
cluster-deploy: venv kube-bins helm ## Namespaces, Secrets, volumes, then the cryptolake chart (values-kind + values-node) on the node, --wait, helm test
	PYTHON=$(BIN)/python cluster/deploy.sh $(CLUSTER_DIR)/kubeconfig $(DEPLOY_ARGS)

cluster-airflow: venv ## Airflow standalone here, its DAGs on the node (kubernetes backend; UI on http://127.0.0.1:18280)
	$(CLI) local airflow --kubeconfig $(CLUSTER_DIR)/kubeconfig

e2e-cluster: setup ## The real node end to end: node, images, add-ons, its tests (-m cluster), then chart + Airflow init and 10x + checks
	$(MAKE) --no-print-directory cluster-up cluster-images cluster-addons
	$(BIN)/pytest -m cluster tests/cluster $(PYTEST_ARGS)
	$(BIN)/python tests/e2e/cluster_e2e.py

# ---- Kubernetes on kind: cluster, images, charts, end to end (docs/kubernetes-images.md) --------------------------
# Each target first checks for a Docker engine and, where there is none, says so in one line and exits 0.
KIND_CLUSTER ?= cryptolake
KUBE_CONTEXT := kind-$(KIND_CLUSTER)
SPARK_OPERATOR_CHART_VERSION ?= 2.5.2
AIRFLOW_CHART_VERSION ?= 1.22.0
# Extra `helm upgrade --install` arguments for the cryptolake chart (the e2e harness points it at its sandbox).
DEPLOY_ARGS ?=
DOCKER_OR_SKIP = if ! docker info >/dev/null 2>&1; then \
	    echo "$@ skipped: no Docker engine on this machine (docker info failed); run it where Docker runs"; exit 0; fi
NEED_TOOLS = for tool in $(1); do command -v $$tool >/dev/null || { echo "$@: $$tool is not installed" >&2; exit 1; }; done
# Image tags: extract and spark from the pipeline spec (`kubernetes.images` of cryptolake/pipeline.yaml), the
# sandbox variant named after the extract image, airflow from charts/values/airflow.yaml (`images.airflow`).
READ_IMAGES = test -x $(BIN)/python || $(MAKE) --no-print-directory venv; \
	read -r extract spark sandbox airflow < <($(BIN)/python tests/e2e/kind_e2e.py --print-images)

kind-up: ## Create the kind cluster of kind-config.yaml (1 control plane + 1 worker); kept when it exists
	@$(DOCKER_OR_SKIP); $(call NEED_TOOLS,kind kubectl); set -e; \
	if kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then echo "kind cluster $(KIND_CLUSTER) is up"; \
	else kind create cluster --name '$(KIND_CLUSTER)' --config kind-config.yaml --wait 180s; fi

images: ## Build cryptolake-extract (+ its sandbox variant), cryptolake-spark and cryptolake-airflow
	@$(DOCKER_OR_SKIP); set -e; $(READ_IMAGES); \
	docker build -f services/Dockerfile -t "$$extract" .; \
	docker build -f services/Dockerfile --build-arg EXTRAS=extract,sandbox -t "$$sandbox" .; \
	docker build -f spark_apps/Dockerfile -t "$$spark" .; \
	docker build -f dags/Dockerfile -t "$$airflow" .

kind-load: ## Load the four images into the kind cluster's nodes
	@$(DOCKER_OR_SKIP); $(call NEED_TOOLS,kind); set -e; $(READ_IMAGES); \
	kind load docker-image --name '$(KIND_CLUSTER)' "$$extract" "$$spark" "$$sandbox" "$$airflow"

# deploy: the namespaces with their Pod Security levels (charts/namespaces.sh), the Secrets (charts/kind-secrets.sh:
# random values made here for what does not exist yet, CMC_API_KEY
# from the environment), then the charts, the cryptolake chart on those Secrets (secrets.existingSecrets).
deploy: ## Namespaces (Pod Security labels), Secrets, then helm-install the Spark Operator, the cryptolake chart (values-kind.yaml) and Airflow into kind
	@$(DOCKER_OR_SKIP); $(call NEED_TOOLS,kubectl helm openssl); set -e; \
	jobs_ns=$$($(BIN)/python -c 'from cryptolake.pipeline import default; print(default().kubernetes.namespace)'); \
	charts/namespaces.sh $(KUBE_CONTEXT) "$$jobs_ns" airflow spark-operator; \
	charts/kind-secrets.sh $(KUBE_CONTEXT) "$$jobs_ns" airflow; \
	helm repo add spark-operator https://kubeflow.github.io/spark-operator --force-update >/dev/null; \
	helm repo add apache-airflow https://airflow.apache.org --force-update >/dev/null; \
	helm upgrade --install spark-operator spark-operator/spark-operator --version $(SPARK_OPERATOR_CHART_VERSION) \
	    --kube-context $(KUBE_CONTEXT) -n spark-operator --create-namespace \
	    -f charts/values/spark-operator.yaml --wait --timeout 10m; \
	helm upgrade --install cryptolake charts/cryptolake --kube-context $(KUBE_CONTEXT) -n "$$jobs_ns" \
	    -f charts/cryptolake/values-kind.yaml --set secrets.existingSecrets=true \
	    --set postgresql.auth.existingSecret=cryptolake-postgresql $(DEPLOY_ARGS) --wait --timeout 15m; \
	helm upgrade --install airflow apache-airflow/airflow --version $(AIRFLOW_CHART_VERSION) \
	    --kube-context $(KUBE_CONTEXT) -n airflow -f charts/values/airflow.yaml --wait --timeout 20m

e2e-kind: ## End to end on kind: cluster, images, charts, init + 10x DAGs against an in-cluster sandbox, checks
	@$(DOCKER_OR_SKIP); $(call NEED_TOOLS,kind kubectl helm); set -e; \
	test -x $(BIN)/python || $(MAKE) --no-print-directory venv; \
	$(BIN)/python tests/e2e/kind_e2e.py --cluster '$(KIND_CLUSTER)'

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

measured-month: setup ## One simulated December of the default schedule's extractions vs the budget (credits within 5 %)
	$(BIN)/pytest -s tests/budget/test_measured_month.py

bench-cycle: setup ## Cycle benchmark: one 10x cycle (extract, Spark start-up, transform, load) on its own local stack, stage shares
	$(BIN)/python bench/cycle_bench.py --repeat 3

bench-driver-memory: setup ## Peak memory (JVM, Python) of each Spark app of init and 10x, with the cluster's 1g driver heap
	SPARK_DRIVER_MEMORY=1g $(BIN)/python bench/driver_memory.py --groups init,10x
