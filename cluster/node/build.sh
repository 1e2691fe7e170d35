#!/usr/bin/env bash
# Builds everything the node runs, each cached under ${XDG_CACHE_HOME:-~/.cache}/cryptolake/ and rebuilt only
# when its recipe changes:
#   - the Kubernetes binaries (kube/build.sh --node: the repo's one Kubernetes pin) -> kube/<version>/bin/
#   - CoreDNS from the Go module proxy (coredns/go.mod)                         -> node/coredns-<key>/coredns
#   - the pause program (pause/pause.go)                                          -> node/pause-<key>/pause
#   - crictl from the Go module proxy (crictl/go.mod), to look at pods through the CRI -> node/crictl-<key>/crictl
#   - the two images from the Dockerfiles beside them, built by buildah (no daemon) and saved as docker-archive
#     tars for `ctr images import`                                              -> node/images/<name>-<key>.tar
# <key> is a hash of the recipe (sources, go.mod/go.sum, Dockerfile, Go version).
#
# Usage: build.sh [--print NAME]   (--print pause-image|coredns-image prints the tar path, the image reference
#                                   is on the line after it; --print kube-bin prints the binary directory,
#                                   --print crictl the crictl binary)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/cryptolake/node
export PATH=/usr/local/go/bin:$PATH GOWORK=off GOFLAGS="-trimpath -buildvcs=false -mod=readonly" CGO_ENABLED=0

key() {  # key <files...>: a short hash of the files' contents and the Go toolchain
    { cat "$@"; go version; } | sha256sum | cut -c1-12
}
coredns_version=$(awk '$1 == "require" && $2 == "github.com/coredns/coredns" {print $3}
                        $1 == "github.com/coredns/coredns" && $2 ~ /^v/ {print $2}' "$here/coredns/go.mod")
coredns_key=$(key "$here/coredns/go.mod" "$here/coredns/go.sum")
pause_key=$(key "$here/pause/go.mod" "$here/pause/pause.go")
crictl_key=$(key "$here/crictl/go.mod" "$here/crictl/go.sum")
crictl_bin=$cache/crictl-$crictl_key/crictl
coredns_bin=$cache/coredns-$coredns_key/coredns
pause_bin=$cache/pause-$pause_key/pause
coredns_image_key=$(key "$here/coredns/Dockerfile" <(echo "$coredns_key"))
pause_image_key=$(key "$here/pause/Dockerfile" <(echo "$pause_key"))
# The references the node uses (containerd's sandbox_image, the CoreDNS Deployment); localhost/ so that they
# can never be mistaken for, or pulled from, a registry image.
coredns_ref=localhost/cryptolake/coredns:${coredns_version#v}-$coredns_image_key
pause_ref=localhost/cryptolake/pause:$pause_image_key
coredns_tar=$cache/images/coredns-$coredns_image_key.tar
pause_tar=$cache/images/pause-$pause_image_key.tar

case ${1-} in
    --print)
        case ${2-} in
            pause-image) printf '%s\n%s\n' "$pause_tar" "$pause_ref" ;;
            coredns-image) printf '%s\n%s\n' "$coredns_tar" "$coredns_ref" ;;
            kube-bin) echo "$("$here/kube/build.sh" --print-dir)/bin" ;;
            crictl) echo "$crictl_bin" ;;
            *) echo "build.sh: --print takes pause-image, coredns-image, kube-bin or crictl" >&2; exit 2 ;;
        esac
        exit 0 ;;
    "") ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
esac

"$here/kube/build.sh" --node
mkdir -p "$cache/images"
exec 9>"$cache/.lock"
flock 9

go_build() {  # go_build <module dir> <package> <output binary>
    local staging
    staging=$(mktemp -d "$cache/.build.XXXXXX")
    (cd "$1" && go build -ldflags="-s -w" -o "$staging/bin" "$2")
    mkdir -p "$(dirname "$3")"
    mv -f "$staging/bin" "$3"
    rm -rf "$staging"
}
if [[ ! -x $pause_bin ]]; then
    go_build "$here/pause" . "$pause_bin"
fi
if [[ ! -x $crictl_bin ]]; then
    echo "build.sh: building crictl (cold: about 1.5 minutes)"
    go_build "$here/crictl" sigs.k8s.io/cri-tools/cmd/crictl "$crictl_bin"
fi
if [[ ! -x $coredns_bin ]]; then
    echo "build.sh: building CoreDNS $coredns_version (cold: about 3 minutes, 1.1 GB peak)"
    started=$(date +%s)
    go_build "$here/coredns" github.com/coredns/coredns "$coredns_bin"
    echo "build.sh: CoreDNS built in $(( $(date +%s) - started ))s"
fi

# buildah keeps its own storage here, apart from any other user's of buildah on the machine.
buildah=(buildah --root "$cache/buildah/root" --runroot "$cache/buildah/run" --storage-driver vfs)
image() {  # image <Dockerfile dir> <binary> <reference> <tar>
    [[ -s $4 ]] && return 0
    local context staging
    context=$(mktemp -d "$cache/.context.XXXXXX")
    cp "$2" "$context/"
    "${buildah[@]}" build --quiet --layers=false -f "$1/Dockerfile" -t "$3" "$context" >/dev/null
    staging=$(mktemp "$cache/images/.tar.XXXXXX")
    rm -f "$staging"
    "${buildah[@]}" push --quiet "$3" "docker-archive:$staging:$3"
    "${buildah[@]}" rmi "$3" >/dev/null
    mv -f "$staging" "$4"
    rm -rf "$context"
    echo "build.sh: image $3 -> $4"
}
image "$here/pause" "$pause_bin" "$pause_ref" "$pause_tar"
image "$here/coredns" "$coredns_bin" "$coredns_ref" "$coredns_tar"
echo "build.sh: node binaries and images ready"
