#!/usr/bin/env bash
# Builds the Kubernetes binaries from the Go module proxy: kube-apiserver, kubectl and etcd for tests/kubernetes,
# and with --node also kube-controller-manager, kube-scheduler, kubelet and kube-proxy for `make cluster-up`.
#
# The versions are the ones go.mod beside this script pins (the repo's one Kubernetes pin): k8s.io/kubernetes
# (its staging modules replaced by their published v0.<minor>.<patch>) and go.etcd.io/etcd/server/v3 at the
# version Kubernetes itself requires.
# Output: ${XDG_CACHE_HOME:-~/.cache}/cryptolake/kube/<k8s version>/bin/<binary>
# (CRYPTOLAKE_KUBE_BINS overrides that directory). Builds only the binaries that are missing or do not run.
# A cold build of the first three takes about 11 minutes on 2 cores; the node's four add about 2 more.
#
# Usage: build.sh [--node] [--print-dir]   (--print-dir prints the output directory and exits)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

wanted=(kube-apiserver kubectl etcd)
print_dir=
for arg in "$@"; do
    case $arg in
        --node) wanted+=(kube-controller-manager kube-scheduler kubelet kube-proxy) ;;
        --print-dir) print_dir=1 ;;
        *) echo "build.sh: unknown argument $arg (use --node, --print-dir)" >&2; exit 2 ;;
    esac
done

kube_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}
                    $1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2}' "$here/go.mod")
if [[ ! $kube_version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
    echo "build.sh: cannot read the k8s.io/kubernetes version from $here/go.mod" >&2
    exit 1
fi
major=${BASH_REMATCH[1]}
minor=${BASH_REMATCH[2]}
out=${CRYPTOLAKE_KUBE_BINS:-${XDG_CACHE_HOME:-$HOME/.cache}/cryptolake/kube/$kube_version}
if [[ -n $print_dir ]]; then
    echo "$out"
    exit 0
fi

runs() {
    case $1 in
        kubectl) "$out/bin/kubectl" version --client >/dev/null 2>&1 ;;
        *) "$out/bin/$1" --version >/dev/null 2>&1 ;;
    esac
}
missing() {
    local b
    for b in "${wanted[@]}"; do runs "$b" || echo "$b"; done
}
if [[ -z $(missing) ]]; then
    echo "build.sh: ${wanted[*]} $kube_version present in $out"
    exit 0
fi

command -v go >/dev/null || { echo "build.sh: needs Go (1.26 or newer) on PATH" >&2; exit 1; }
mkdir -p "$out"
# One build at a time per version (make kube-bins, make cluster-up and the test fixture may race).
exec 9>"$out/.lock"
flock 9
mapfile -t todo < <(missing)
if [[ ${#todo[@]} -eq 0 ]]; then
    echo "build.sh: built meanwhile by another process: $out"
    exit 0
fi

# Reproducible version stamps: the release time the module proxy records for this version.
release_time=$(cd "$here" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$release_time"
done
packages=()
for b in "${todo[@]}"; do
    case $b in
        etcd) packages+=(go.etcd.io/etcd/server/v3) ;;
        *) packages+=("k8s.io/kubernetes/cmd/$b") ;;
    esac
done

export GOWORK=off GOFLAGS="-trimpath -buildvcs=false -mod=readonly" CGO_ENABLED=0
staging=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$staging"' EXIT
echo "build.sh: building ${todo[*]} $kube_version into $out"
started=$(date +%s)
# One invocation for all of them so they share the compile of their common packages.
(cd "$here" && go build -ldflags="$ldflags" -o "$staging/" "${packages[@]}")
# go names the etcd binary after its module path (".../server/v3" -> "server").
if [[ -e $staging/server ]]; then mv "$staging/server" "$staging/etcd"; fi
mkdir -p "$out/bin"
for b in "${todo[@]}"; do
    mv -f "$staging/$b" "$out/bin/$b"
done
(cd "$here" && go list -m k8s.io/kubernetes go.etcd.io/etcd/server/v3 && go version) >"$out/VERSIONS"
[[ -z $(missing) ]] || { echo "build.sh: the built binaries do not run: $(missing | tr '\n' ' ')" >&2; exit 1; }
echo "build.sh: done in $(( $(date +%s) - started ))s: $(cd "$out/bin" && du -sh "${todo[@]}" | tr '\n\t' '  ')"
