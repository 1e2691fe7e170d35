#!/usr/bin/env bash
# Builds kube-network-policies (sigs.k8s.io/kube-network-policies, the version go.mod pins; the NetworkPolicy agent
# kind runs) from the Go module proxy, named netpol like upstream's image, with one patch, nfqueue-compat.patch:
# upstream sends packets to its nfqueue with the nftables `queue` statement, which needs the kernel's nft_queue
# (CONFIG_NFT_QUEUE); kernels without it (this VM's: no such option, no loadable modules) refuse the whole rule set
# with ENOENT. The patch uses the xtables NFQUEUE target through nft_compat instead: the same queue, the same
# verdicts from the same userspace code (docs/kubernetes.md, "NetworkPolicies").
# Output: ${XDG_CACHE_HOME:-~/.cache}/cryptolake/kube-network-policies/<version>/bin/netpol.
# Usage: build.sh [--print-dir]
set -euo pipefail
source "$(dirname "$0")/../lib/go-build.sh"
[[ ${1-} == --print-dir ]] && GO_BUILD_PRINT_DIR=1
GO_BUILD_PATCH=$(cd "$(dirname "$0")" && pwd)/nfqueue-compat.patch
go_build kube-network-policies sigs.k8s.io/kube-network-policies "-s -w" netpol=sigs.k8s.io/kube-network-policies/cmd
