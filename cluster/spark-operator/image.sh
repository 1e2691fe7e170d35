#!/usr/bin/env bash
# Builds cryptolake-spark-operator: cluster/spark-operator/Dockerfile on the project's Spark image with the binary
# build.sh makes, and imports it into the node's containerd when its socket is given (cluster/lib/buildah-image.sh).
# The Spark image is the one cluster/images/images.py builds for this tree (its archive, built first when missing),
# loaded into buildah's storage when the storage holds another. Rebuilt only when the Spark image, the binary's
# recipe or the Dockerfile change.
#
#   image.sh [<containerd socket>]          (PYTHON: the project's venv python, default .venv/bin/python)
# Prints the image reference, as the node's containerd names it, as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/../lib/buildah-image.sh"
socket=${1-}
python=${PYTHON:-$repo/.venv/bin/python}
images=$repo/cluster/images/images.py

"$python" "$images" build spark >&2
read -r _ spark_image spark_archive _ < <("$python" "$images" list spark)
spark_id=$("$python" -c 'import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import images
print(images.archive_config(Path(sys.argv[2])).removeprefix("sha256:"))' "$(dirname "$images")" "$spark_archive")
if [[ $(buildah inspect --type image --format '{{.FromImageID}}' "$spark_image" 2>/dev/null) != "$spark_id" ]]; then
    buildah pull --quiet "docker-archive:$spark_archive" >/dev/null
    buildah tag "$spark_id" "$spark_image"
fi

"$here/build.sh" >&2
bins=$("$here/build.sh" --print-dir)
version=$(basename "$bins")
key=$({ echo "$spark_id"; cat "$bins/RECIPE" "$here/Dockerfile"; } | sha256sum | cut -c1-16)
# The tag names the operator, the Spark image's tag and what went in (the key): another binary or another build of
# the Spark image is another tag, so a `helm upgrade` rolls the pods.
image=cryptolake-spark-operator:${version#v}-${spark_image##*:}-${key:0:8}
buildah_image "$here/Dockerfile" "$bins/bin" "$image" "$key" "$socket" "SPARK_IMAGE=$spark_image"
echo "docker.io/library/$image"
