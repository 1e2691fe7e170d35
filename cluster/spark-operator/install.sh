#!/usr/bin/env bash
# Installs the Spark Operator into the single-node cluster (cluster/node), idempotently (`helm upgrade --install`):
# the chart of the kubeflow/spark-operator Go module at the version cluster/spark-operator/go.mod pins (its
# charts/spark-operator-chart, from the Go module cache: no chart repository is reachable here), with its CRDs, RBAC
# and webhook, the repo's charts/values/spark-operator.yaml, and the image image.sh builds from the project's Spark
# image (pull policy Never: there is no registry). The namespaces come first, with their Pod Security levels, as
# `make deploy` makes them (charts/namespaces.sh).
#
#   install.sh <kubeconfig> <containerd socket> <jobs namespace> <chart version>
# <chart version> is the Makefile's SPARK_OPERATOR_CHART_VERSION: it must be the version go.mod pins. HELM and KUBECTL
# name the binaries to use (default: the helm cluster/helm/build.sh builds, kubectl on PATH).
set -euo pipefail
: "${KUBECTL:=kubectl}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
if [[ $# -ne 4 ]]; then
    echo "usage: $0 <kubeconfig> <containerd socket> <jobs namespace> <chart version>" >&2
    exit 2
fi
kubeconfig=$1 socket=$2 jobs_ns=$3 chart_version=$4
module=github.com/kubeflow/spark-operator/v2
pinned=$(basename "$("$here/build.sh" --print-dir)")
if [[ ${pinned#v} != "$chart_version" ]]; then
    echo "$0: cluster/spark-operator/go.mod pins $module $pinned but the chart version asked for is" \
        "$chart_version (Makefile SPARK_OPERATOR_CHART_VERSION): change both together" >&2
    exit 1
fi
[[ -S $socket ]] || { echo "$0: no containerd socket at $socket: is the node up (make cluster-up)?" >&2; exit 1; }
export KUBECONFIG=$kubeconfig
"$KUBECTL" get nodes >/dev/null || { echo "$0: the cluster of $kubeconfig does not answer" >&2; exit 1; }

if [[ -z ${HELM-} ]]; then
    "$repo/cluster/helm/build.sh" >&2
    HELM=$("$repo/cluster/helm/build.sh" --print-dir)/bin/helm
fi
image=$("$here/image.sh" "$socket" | tail -n 1)
export GOWORK=off
chart=$(cd "$here" && go mod download "$module" && go list -m -f '{{.Dir}}' "$module")/charts/spark-operator-chart
grep -qx "version: $chart_version" "$chart/Chart.yaml" ||
    { echo "$0: $chart is not chart version $chart_version" >&2; exit 1; }

"$repo/charts/namespaces.sh" "$("$KUBECTL" config current-context)" "$jobs_ns" airflow spark-operator
started=$SECONDS
"$HELM" upgrade --install spark-operator "$chart" -n spark-operator \
    -f "$repo/charts/values/spark-operator.yaml" \
    --set image.registry="${image%%/*}" --set image.repository="$(echo "$image" | cut -d/ -f2- | cut -d: -f1)" \
    --set image.tag="${image##*:}" --set image.pullPolicy=Never \
    --wait --timeout 5m
# The controller's own spark-submit needs one more grant in the jobs namespace (spark-submit-rbac.yaml).
"$KUBECTL" apply -n "$jobs_ns" -f "$here/spark-submit-rbac.yaml"
echo "install.sh: spark-operator $chart_version ($image) installed and ready in $((SECONDS - started))s"
