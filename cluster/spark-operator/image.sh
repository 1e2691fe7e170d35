#!/usr/bin/env bash
# Builds cryptolake-spark-operator: cluster/spark-operator/Dockerfile on the project's Spark image (which must already
# be in buildah's storage, as cluster/images builds it) with the binary build.sh makes; imported into the node's
# containerd when its socket is given (cluster/lib/buildah-image.sh). Rebuilt only when the Spark image, the
# binary's recipe or the Dockerfile change.
#
#   image.sh <spark image, e.g. cryptolake-spark:0.1.0> [<containerd socket>]
# Prints the image reference, as the node's containerd names it, as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/buildah-image.sh"
if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 <spark image> [<containerd socket>]" >&2
    exit 2
fi
spark_image=$1 socket=${2-}

"$here/build.sh" >&2
bins=$("$here/build.sh" --print-dir)
version=$(basename "$bins")
# The tag names both parts: a new operator or a new Spark image is a new tag, so a `helm upgrade` rolls the pods.
image=cryptolake-spark-operator:${version#v}-${spark_image##*:}
spark_id=$(buildah inspect --type image --format '{{.FromImageID}}' "$spark_image" 2>/dev/null) || {
    echo "$0: the Spark image $spark_image is not in buildah's storage; build it first (cluster/images)" >&2
    exit 1
}
key=$({ echo "$spark_id"; cat "$bins/RECIPE" "$here/Dockerfile"; } | sha256sum | cut -c1-16)
buildah_image "$here/Dockerfile" "$bins/bin" "$image" "$key" "$socket" "SPARK_IMAGE=$spark_image"
echo "docker.io/library/$image"
