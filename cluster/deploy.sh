#!/usr/bin/env bash
# The cryptolake release on the real node (`make cluster-deploy`): namespaces with their Pod Security levels,
# the Secrets (charts/kind-secrets.sh: random values made once, CMC_API_KEY from the environment), the volumes
# the node offers, then `helm upgrade --install` with values-kind.yaml + values-node.yaml, --wait, and `helm test`.
# The Spark Operator and NetworkPolicy enforcement come first (`make cluster-addons`).
#
# The node has no dynamic provisioner: the StorageClass values-node.yaml names is offered as hostPath
# PersistentVolumes under <cluster state>/volumes, world-writable directories as local-path-provisioner makes
# them (each pod makes its own data directory inside, under its own uid). They are Retain: a reinstall finds
# its data again; `make cluster-down` removes the node's state and them with it.
#
# Usage: cluster/deploy.sh <kubeconfig> [extra helm arguments...]     (HELM, KUBECTL: the binaries to use)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
kubeconfig=${1:?usage: $0 <kubeconfig> [helm arguments...]}
shift
: "${HELM:?HELM must name the helm binary (make cluster-deploy sets it)}"
: "${KUBECTL:=kubectl}"
export KUBECONFIG=$kubeconfig
# charts/namespaces.sh and kind-secrets.sh call `kubectl`: the one of the repo's Kubernetes pin
case $KUBECTL in */*) PATH=$(dirname "$KUBECTL"):$PATH ;; esac
python=${PYTHON:-$repo/.venv/bin/python}
state=$(cd "$(dirname "$kubeconfig")" && pwd)
context=$("$KUBECTL" config current-context)
jobs_ns=$("$python" -c 'from cryptolake.pipeline import default; print(default().kubernetes.namespace)')
read -r storage_class volumes < <("$python" - "$repo" <<'EOF'
import sys
from pathlib import Path

import yaml

chart = Path(sys.argv[1]) / "charts" / "cryptolake"
node = yaml.safe_load((chart / "values-node.yaml").read_text())
classes = {node["objectStore"]["seaweedfs"]["persistence"]["storageClass"],
           node["postgresql"]["persistence"]["storageClass"]}
assert len(classes) == 1, f"values-node.yaml names more than one storage class: {classes}"
print(classes.pop(), 2)  # the object store's and PostgreSQL's claims
EOF
)

"$repo/charts/namespaces.sh" "$context" "$jobs_ns" airflow spark-operator
"$repo/charts/kind-secrets.sh" "$context" "$jobs_ns" airflow

{
    cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: $storage_class}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
    for i in $(seq 1 "$volumes"); do
        dir=$state/volumes/$storage_class-$i
        mkdir -p "$dir" && chmod 1777 "$dir"
        cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: $storage_class-$i}
spec:
  storageClassName: $storage_class
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: $dir, type: Directory}
EOF
    done
} | "$KUBECTL" apply -f - >/dev/null
echo "deploy.sh: storage class $storage_class with $volumes hostPath volumes under $state/volumes"

started=$(date +%s)
"$HELM" upgrade --install cryptolake "$repo/charts/cryptolake" -n "$jobs_ns" \
    -f "$repo/charts/cryptolake/values-kind.yaml" -f "$repo/charts/cryptolake/values-node.yaml" \
    --set secrets.existingSecrets=true --set postgresql.auth.existingSecret=cryptolake-postgresql \
    "$@" --wait --timeout 10m
echo "deploy.sh: release cryptolake ready in $(( $(date +%s) - started ))s"
"$HELM" test cryptolake -n "$jobs_ns" --timeout 5m
