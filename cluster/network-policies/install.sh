#!/usr/bin/env bash
# Runs kube-network-policies on the single-node cluster (cluster/node), idempotently: the binary build.sh makes, in
# the image of this directory's Dockerfile (imported into the node's containerd), as the DaemonSet of
# daemonset.yaml; waits until it is ready.
#
#   install.sh <kubeconfig> <containerd socket>      (KUBECTL: the kubectl to use)
set -euo pipefail
: "${KUBECTL:=kubectl}"
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/buildah-image.sh"
if [[ $# -ne 2 ]]; then
    echo "usage: $0 <kubeconfig> <containerd socket>" >&2
    exit 2
fi
kubeconfig=$1 socket=$2
[[ -S $socket ]] || { echo "$0: no containerd socket at $socket: is the node up (make cluster-up)?" >&2; exit 1; }

"$here/build.sh" >&2
bins=$("$here/build.sh" --print-dir)
version=$(basename "$bins")
# The recipe in the tag: a rebuilt binary is a new tag, so the DaemonSet rolls.
image=cryptolake-kube-network-policies:${version#v}-$(cut -c1-8 "$bins/RECIPE")
buildah_image "$here/Dockerfile" "$bins/bin" "$image" \
    "$({ cat "$bins/RECIPE" "$here/Dockerfile"; } | sha256sum | cut -c1-16)" "$socket"
started=$SECONDS
sed "s|image: IMAGE|image: docker.io/library/$image|" "$here/daemonset.yaml" |
    "$KUBECTL" --kubeconfig "$kubeconfig" apply -f -
"$KUBECTL" --kubeconfig "$kubeconfig" -n kube-system rollout status daemonset/kube-network-policies --timeout 120s
echo "install.sh: kube-network-policies $version ready in $((SECONDS - started))s"
