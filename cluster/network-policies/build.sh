#!/usr/bin/env bash
# Builds kube-network-policies (sigs.k8s.io/kube-network-policies, the version go.mod pins; the NetworkPolicy agent
# kind runs) from the Go module proxy, named netpol like upstream's image.
# Output: ${XDG_CACHE_HOME:-~/.cache}/cryptolake/kube-network-policies/<version>/bin/netpol.
# Usage: build.sh [--print-dir]
set -euo pipefail
source "$(dirname "$0")/../lib/go-build.sh"
[[ ${1-} == --print-dir ]] && GO_BUILD_PRINT_DIR=1
go_build kube-network-policies sigs.k8s.io/kube-network-policies "-s -w" netpol=sigs.k8s.io/kube-network-policies/cmd
