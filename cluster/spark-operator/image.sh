#!/usr/bin/env bash
# Builds cryptolake-spark-operator: cluster/spark-operator/Dockerfile with buildah (no daemon, no registry: the Spark
# image must already be in buildah's storage, as cluster/images builds it), saved as a docker-archive in
# ${XDG_CACHE_HOME:-~/.cache}/cryptolake/images/, and imported into the node's containerd when its socket is given.
# Rebuilt only when the Spark image, the operator binary's recipe or the Dockerfile change.
#
#   image.sh <spark image, e.g. cryptolake-spark:0.1.0> [<containerd socket>]
# Prints the image reference as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 <spark image> [<containerd socket>]" >&2
    exit 2
fi
spark_image=$1 socket=${2-}
for tool in buildah ctr; do
    command -v $tool >/dev/null || { echo "$0: $tool is not installed (Debian: buildah, containerd)" >&2; exit 1; }
done

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
cache=${XDG_CACHE_HOME:-$HOME/.cache}/cryptolake/images
archive=$cache/cryptolake-spark-operator.tar
mkdir -p "$cache"
exec 9>"$archive.lock"
flock 9
if [[ $(cat "$archive.key" 2>/dev/null) != "$key" ]]; then
    started=$SECONDS
    buildah bud --pull=never --layers -q -f "$here/Dockerfile" --build-arg "SPARK_IMAGE=$spark_image" \
        -t "$image" "$bins/bin" >&2
    rm -f "$archive"
    buildah push -q "$image" "docker-archive:$archive:$image" >&2
    echo "$key" >"$archive.key"
    echo "image.sh: built $image in $((SECONDS - started))s ($(du -h "$archive" | cut -f1))" >&2
fi
if [[ -n $socket ]]; then
    ctr -n k8s.io --address "$socket" images import "$archive" >&2
fi
echo "docker.io/library/$image"
