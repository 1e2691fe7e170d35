#!/usr/bin/env bash
# Builds the helm CLI (Helm v4, the version go.mod pins) from the Go module proxy for the Makefile's Kubernetes
# targets. v4 rather than v3: the chart tests render with the Helm v4 SDK (helm-python-sdk), so the CLI that installs
# the chart is the same Helm that the tests check it with.
# Output: ${XDG_CACHE_HOME:-~/.cache}/cryptolake/helm/<version>/bin/helm. Usage: build.sh [--print-dir]
set -euo pipefail
source "$(dirname "$0")/../lib/go-build.sh"
[[ ${1-} == --print-dir ]] && GO_BUILD_PRINT_DIR=1
stamp=helm.sh/helm/v4/internal/version
go_build helm helm.sh/helm/v4 \
    "-s -w -X $stamp.version={version} -X $stamp.gitCommit={commit} -X $stamp.gitTreeState=clean" \
    helm=helm.sh/helm/v4/cmd/helm
