# Sourced by cluster/<component>/*.sh: builds a Dockerfile with buildah (no daemon; --pull=never: no registry is
# reachable, every base must already be in buildah's storage), saves it as a docker-archive in
# ${XDG_CACHE_HOME:-~/.cache}/cryptolake/images/<name>.tar and imports it into the node's containerd.
#
#   buildah_image <Dockerfile> <context dir> <image name:tag> <cache key> <containerd socket or ""> [<build arg>...]
#
# The build is skipped when the archive was made with the same cache key (the caller's hash of what goes in).
set -euo pipefail

buildah_image() {
    local dockerfile=$1 context=$2 image=$3 key=$4 socket=$5
    shift 5
    local tool
    for tool in buildah ctr; do
        command -v $tool >/dev/null || { echo "$tool is not installed (Debian: buildah, containerd)" >&2; return 1; }
    done
    local cache=${XDG_CACHE_HOME:-$HOME/.cache}/cryptolake/images
    # Fully qualified as containerd names an imported short name (buildah would say localhost/).
    [[ $image == */* ]] || image=docker.io/library/$image
    local name=${image%:*}
    local archive=$cache/${name##*/}.tar
    mkdir -p "$cache"
    (
        flock 9
        if [[ $(cat "$archive.key" 2>/dev/null) != "$key" ]]; then
            local started=$SECONDS arg
            local -a build_args=()
            for arg in "$@"; do build_args+=(--build-arg "$arg"); done
            buildah bud --pull=never --layers -q -f "$dockerfile" "${build_args[@]}" -t "$image" "$context" >&2
            rm -f "$archive"
            buildah push -q "$image" "docker-archive:$archive:$image" >&2
            echo "$key" >"$archive.key"
            echo "built $image in $((SECONDS - started))s ($(du -h "$archive" | cut -f1))" >&2
        fi
        if [[ -n $socket ]]; then
            # Imported already when the node has this name at the digest the last import of this archive gave it.
            local digest
            digest=$(ctr -n k8s.io --address "$socket" images ls "name==$image" | awk 'NR == 2 {print $3}')
            if [[ -z $digest || "$key $digest" != "$(cat "$archive.imported" 2>/dev/null)" ]]; then
                ctr -n k8s.io --address "$socket" images import "$archive" >&2
                digest=$(ctr -n k8s.io --address "$socket" images ls "name==$image" | awk 'NR == 2 {print $3}')
                echo "$key $digest" >"$archive.imported"
            fi
        fi
    ) 9>"$archive.lock"
}
