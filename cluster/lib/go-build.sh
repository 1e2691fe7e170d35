# Sourced by cluster/<component>/build.sh: builds binaries of one Go module from the Go module proxy, at the version
# the go.mod beside the caller pins, the way cluster/node/kube/build.sh builds kube-bins.
#
#   go_build <thing> <module> <ldflags> <binary>=<package>...
#
# Output: ${XDG_CACHE_HOME:-~/.cache}/cryptolake/<thing>/<version>/bin/<binary>. A RECIPE file there holds a hash of
# the go.mod, go.sum, ldflags and Go version: a changed recipe rebuilds, an unchanged one does nothing. <ldflags> may
# use {version}, {commit} (the tag's commit the proxy records) and {date} (the tag's time).
# GO_BUILD_PATCH=<file>: the module's source is patched with it (patch -p1) before the build, through a replace in a
# copy of the go.mod; the patch is part of the recipe. GO_BUILD_PRINT_DIR=1: print the output directory only.
set -euo pipefail

go_build() {
    local thing=$1 module=$2 ldflags_template=$3
    shift 3
    local here
    here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
    local version
    version=$(awk -v m="$module" '($1 == "require" && $2 == m) {print $3} ($1 == m && $2 ~ /^v/) {print $2}' \
        "$here/go.mod")
    [[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || {
        echo "$thing: cannot read the $module version from $here/go.mod" >&2
        return 1
    }
    local out=${XDG_CACHE_HOME:-$HOME/.cache}/cryptolake/$thing/$version
    if [[ ${GO_BUILD_PRINT_DIR-} == 1 ]]; then
        echo "$out"
        return 0
    fi
    command -v go >/dev/null || { echo "$thing: needs Go (1.26 or newer) on PATH" >&2; return 1; }
    local -a bins=()
    local spec
    for spec in "$@"; do bins+=("${spec%%=*}"); done

    export GOWORK=off GOFLAGS="-trimpath -buildvcs=false -mod=readonly" CGO_ENABLED=0
    local info commit date
    # The tag's commit and time as the module proxy records them (reproducible version stamps).
    info=$(cd "$here" &&
        go list -m -f '{{with .Origin}}{{.Hash}}{{end}} {{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "$module@$version")
    commit=${info%% *} date=${info##* }
    local ldflags=${ldflags_template//\{version\}/$version}
    ldflags=${ldflags//\{commit\}/$commit}
    ldflags=${ldflags//\{date\}/$date}
    local recipe
    local patch=${GO_BUILD_PATCH-}
    recipe=$({ cat "$here/go.mod" "$here/go.sum" ${patch:+"$patch"}; echo "$ldflags $*"; go version; } |
        sha256sum | cut -c1-16)

    present() {
        [[ $(cat "$out/RECIPE" 2>/dev/null) == "$recipe" ]] || return 1
        local b
        for b in "${bins[@]}"; do [[ -x $out/bin/$b ]] || return 1; done
    }
    if present; then
        echo "$thing $version present in $out/bin"
        return 0
    fi
    mkdir -p "$out"
    # One build at a time per version (a make target and a test may race).
    exec 9>"$out/.lock"
    flock 9
    if present; then
        echo "$thing $version built meanwhile by another process: $out/bin"
        return 0
    fi
    local staging
    staging=$(mktemp -d "$out/.build.XXXXXX")
    # shellcheck disable=SC2064  # expand now: the variable is local
    trap "rm -rf '$staging'" EXIT
    echo "$thing: building ${bins[*]} $version into $out/bin"
    local started=$SECONDS
    local -a modfile=()
    if [[ -n $patch ]]; then
        local src
        src=$(cd "$here" && go mod download "$module" && go list -m -f '{{.Dir}}' "$module")
        cp -r "$src" "$staging/src"
        chmod -R u+w "$staging/src"
        patch -s -p1 -d "$staging/src" <"$patch"
        cp "$here/go.mod" "$here/go.sum" "$staging/"
        go mod edit -replace "$module=$staging/src" "$staging/go.mod"
        modfile=(-modfile "$staging/go.mod")
        echo "$thing: $module patched with $patch"
    fi
    for spec in "$@"; do
        (cd "$here" && go build "${modfile[@]}" -ldflags="$ldflags" -o "$staging/${spec%%=*}" "${spec#*=}")
    done
    mkdir -p "$out/bin"
    local b
    for b in "${bins[@]}"; do mv -f "$staging/$b" "$out/bin/$b"; done
    (cd "$here" && go list -m "$module" && go version) >"$out/VERSIONS"
    echo "$recipe" >"$out/RECIPE"
    echo "$thing: done in $((SECONDS - started))s: $(cd "$out/bin" && du -sh "${bins[@]}" | tr '\n\t' '  ')"
}
