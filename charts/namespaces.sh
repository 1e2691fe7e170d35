#!/usr/bin/env bash
# The namespaces of a deployment, with the Pod Security level each one enforces (`make deploy` runs this first;
# docs/kubernetes.md). Created when missing, labelled every time (a re-run, or a namespace made by hand, gets the
# labels too):
#   <jobs namespace>      enforce restricted: every pod of the cryptolake chart, the DAGs and the
#                         SparkApplications runs non-root, without privileges, read-only root, seccomp RuntimeDefault;
#   <airflow namespace>,  enforce baseline, warn and audit restricted: the official Airflow and Spark Operator
#   <operator namespace>  charts' pods do not all set what restricted asks (seccomp, capabilities), so a stricter
#                         level would refuse them; the warnings name what they lack.
#
#   charts/namespaces.sh <kube context> <jobs namespace> <airflow namespace> <spark operator namespace>
set -euo pipefail

if [ $# -ne 4 ]; then
    echo "usage: $0 <kube context> <jobs namespace> <airflow namespace> <spark operator namespace>" >&2
    exit 2
fi
context=$1 jobs_ns=$2
command -v kubectl >/dev/null || { echo "$0: kubectl is not installed" >&2; exit 1; }
kc() { kubectl --context "$context" "$@"; }

# label <namespace> <enforce level>: the namespace with the three modes (pinned to `latest`), applied: created
# when missing, its other labels kept.
label() {
    local namespace=$1 level=$2
    kc create namespace "$namespace" --dry-run=client -o yaml \
        | kc label --local -f - --overwrite -o yaml \
            "pod-security.kubernetes.io/enforce=$level" "pod-security.kubernetes.io/enforce-version=latest" \
            "pod-security.kubernetes.io/warn=restricted" "pod-security.kubernetes.io/warn-version=latest" \
            "pod-security.kubernetes.io/audit=restricted" "pod-security.kubernetes.io/audit-version=latest" \
        | kc apply -f - >/dev/null
    echo "namespace $namespace: enforces Pod Security $level"
}

label "$jobs_ns" restricted
for namespace in "${@:3}"; do
    label "$namespace" baseline
done
