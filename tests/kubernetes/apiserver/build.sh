#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from the Go module proxy for tests/kubernetes.
#
# The versions are the ones go.mod beside this script pins: k8s.io/kubernetes (its staging modules replaced by
# their published v0.<minor>.<patch>) and go.etcd.io/etcd/server/v3 at the version Kubernetes itself requires.
# Output: ${XDG_CACHE_HOME:-~/.cache}/cryptolake/kube/<k8s version>/bin/{kube-apiserver,kubectl,etcd}
# (CRYPTOLAKE_KUBE_BINS overrides that directory). Does nothing when the three binaries are there and run.
# A cold build takes about 11 minutes on 2 cores; later ones reuse Go's build cache.
#
# Usage: build.sh [--print-dir]   (--print-dir prints the output directory and exits)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

kube_version=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}
                    $1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2}' "$here/go.mod")
if [[ ! $kube_version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
    echo "build.sh: cannot read the k8s.io/kubernetes version from $here/go.mod" >&2
    exit 1
fi
major=${BASH_REMATCH[1]}
minor=${BASH_REMATCH[2]}
out=${CRYPTOLAKE_KUBE_BINS:-${XDG_CACHE_HOME:-$HOME/.cache}/cryptolake/kube/$kube_version}
if [[ ${1-} == --print-dir ]]; then
    echo "$out"
    exit 0
fi

present() {
    "$out/bin/kube-apiserver" --version >/dev/null 2>&1 &&
        "$out/bin/kubectl" version --client >/dev/null 2>&1 &&
        "$out/bin/etcd" --version >/dev/null 2>&1
}
if present; then
    echo "build.sh: kube-apiserver, kubectl and etcd $kube_version present in $out"
    exit 0
fi

command -v go >/dev/null || { echo "build.sh: needs Go (1.26 or newer) on PATH" >&2; exit 1; }
mkdir -p "$out"
# One build at a time per version (make kube-bins and the test fixture may race).
exec 9>"$out/.lock"
flock 9
if present; then
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

export GOWORK=off GOFLAGS="-trimpath -buildvcs=false -mod=readonly" CGO_ENABLED=0
staging=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$staging"' EXIT
echo "build.sh: building kube-apiserver, kubectl and etcd $kube_version into $out (cold: about 11 minutes)"
started=$(date +%s)
# One invocation for the three so they share the compile of their common packages.
(cd "$here" && go build -ldflags="$ldflags" -o "$staging/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl go.etcd.io/etcd/server/v3)
# go names the etcd binary after its module path (".../server/v3" -> "server").
mv "$staging/server" "$staging/etcd"
mkdir -p "$out/bin"
for b in kube-apiserver kubectl etcd; do
    mv -f "$staging/$b" "$out/bin/$b"
done
(cd "$here" && go list -m k8s.io/kubernetes go.etcd.io/etcd/server/v3 && go version) >"$out/VERSIONS"
present || { echo "build.sh: the built binaries do not run" >&2; exit 1; }
echo "build.sh: done in $(( $(date +%s) - started ))s: $(cd "$out/bin" && du -sh kube-apiserver kubectl etcd | tr '\n\t' '  ')"
