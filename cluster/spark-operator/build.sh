#!/usr/bin/env bash
# Builds the Spark Operator's binary (kubeflow/spark-operator, the version go.mod pins: the chart version the Makefile
# installs) from the Go module proxy, stamped like upstream's `make build-operator`; Dockerfile puts it on the
# project's Spark image.
# Output: ${XDG_CACHE_HOME:-~/.cache}/cryptolake/spark-operator/<version>/bin/spark-operator.
# Usage: build.sh [--print-dir]
set -euo pipefail
source "$(dirname "$0")/../lib/go-build.sh"
[[ ${1-} == --print-dir ]] && GO_BUILD_PRINT_DIR=1
stamp=k8s.io/component-base/version
go_build spark-operator github.com/kubeflow/spark-operator/v2 \
    "-s -w -X $stamp.gitVersion={version} -X $stamp.gitCommit={commit} -X $stamp.gitTreeState=clean \
-X $stamp.buildDate={date}" \
    spark-operator=github.com/kubeflow/spark-operator/v2/cmd/operator
