"""Builds the images the cluster runs with buildah (no daemon, no registry) and imports them into the node.

The images are the project's own Dockerfiles, built exactly as `docker build` would build them (services/Dockerfile
twice: extract and its sandbox variant; spark_apps/Dockerfile), and local stand-ins for the chart's third-party
images (cluster/images/postgres, cluster/images/seaweedfs). Tags come from where they live: the pipeline spec's
`kubernetes.images` (and the e2e harness's sandbox rule) and the chart's values, so nothing needs retagging.

Every Dockerfile starts FROM debian:trixie-slim, which no registry serves here: debian/rootfs.sh makes it from
Debian's archive and it is committed to buildah's storage under that name, keyed by the sha256 of the recipe.

Cache: one docker-archive tar per image in ${XDG_CACHE_HOME:-~/.cache}/cryptolake/images/ (override
CRYPTOLAKE_IMAGE_CACHE), named by a key over the base's recipe, the Dockerfile, the build arguments, the tag and
every file its COPYs read from the build context (.dockerignore applied). A tar that exists is not rebuilt.
Import: `ctr -n k8s.io images import` on the node's containerd socket (CRYPTOLAKE_CONTAINERD_ADDRESS, else
$CRYPTOLAKE_CLUSTER_DIR or .local/cluster, + containerd/containerd.sock), skipped when the node already holds the
image with the same config digest, and checked afterwards.

Usage: images.py build [NAME...] | import [NAME...] | up [NAME...] (build, then import when the node is up) | list
"""

from __future__ import annotations

import argparse
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BASE = "docker.io/library/debian:trixie-slim"
BASE_RECIPE = HERE / "debian" / "rootfs.sh"
RECIPE_LABEL = "io.cryptolake.recipe"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_JAVA_CA = Path("/etc/ssl/certs/java/cacerts")
MOUNTED_CA = "/run/cryptolake-host-ca"
NAMESPACE = "k8s.io"


@dataclass(frozen=True)
class Image:
    name: str
    ref: str  # fully qualified, as the kubelet resolves the short names of the manifests and the chart
    dockerfile: Path
    context: Path
    build_args: tuple[tuple[str, str], ...] = ()
    check: tuple[str, ...] = ()  # run in a container of the image, as the image's user, after the build


def qualified(ref: str) -> str:
    """The name containerd and the kubelet use for a Docker Hub short name (postgres:17.6 ->
    docker.io/library/postgres:17.6); buildah would otherwise qualify it as localhost/..."""
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if rest else f"docker.io/library/{ref}"


def images() -> list[Image]:
    import yaml

    sys.path.insert(0, str(REPO))
    from tests.e2e.harness import images as project_images

    tags = project_images()
    values = yaml.safe_load((REPO / "charts" / "cryptolake" / "values.yaml").read_text())

    def chart(image: dict) -> str:
        return qualified(f"{image['repository']}:{image['tag']}")

    extract = REPO / "services" / "Dockerfile"
    pg_check = ("bash", "-c", 'export PGDATA=/tmp/check POSTGRES_PASSWORD=check POSTGRES_DB=checkdb; '
                'docker-entrypoint.sh postgres -c listen_addresses= >/tmp/server.log 2>&1 & '
                'for _ in $(seq 60); do pg_isready -q -d checkdb && break; sleep 1; done; '
                'psql -X -At -d checkdb -c "select current_user, version()"; status=$?; '
                'kill -INT %1; wait; [ $status = 0 ] || { cat /tmp/server.log; exit 1; }')
    return [
        Image("extract", qualified(tags["extract"]), extract, REPO, check=("cryptolake", "--help")),
        Image("sandbox", qualified(tags["sandbox"]), extract, REPO, (("EXTRAS", "extract,sandbox"),),
              check=("cryptolake", "sandbox", "--help")),
        Image("spark", qualified(tags["spark"]), REPO / "spark_apps" / "Dockerfile", REPO,
              check=("/opt/entrypoint.sh", "spark-submit", "--version")),
        Image("postgres", chart(values["postgresql"]["image"]), HERE / "postgres" / "Dockerfile", HERE / "postgres",
              check=pg_check),
        Image("seaweedfs", chart(values["objectStore"]["seaweedfs"]["image"]), HERE / "seaweedfs" / "Dockerfile",
              HERE / "seaweedfs", check=("weed", "version")),
    ]


# -- keys --------------------------------------------------------------------------------------------------------

def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    result, current = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not current and not line):
            continue
        current += " " + (line[:-1] if line.endswith("\\") else line)
        if not line.endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
            current = ""
    return result


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's exclusions (an allowlist's `*` and `!` lines aside) drop this context path."""
    parts = relative.split("/")
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        for pattern in patterns:
            if pattern.startswith("**/") and fnmatch.fnmatch(parts[depth - 1], pattern[3:]):
                return True
            if fnmatch.fnmatch(prefix, pattern):
                return True
    return False


def context_files(image: Image) -> list[Path]:
    """The build context files the Dockerfile's COPY/ADD instructions read (not those from other stages)."""
    ignore = image.context / ".dockerignore"
    patterns = [p.strip() for p in (ignore.read_text().splitlines() if ignore.exists() else [])
                if p.strip() and not p.startswith("#") and not p.startswith("!") and p.strip() != "*"]
    files: set[Path] = set()
    for keyword, args in instructions(image.dockerfile):
        if keyword not in ("COPY", "ADD") or "--from=" in args:
            continue
        sources = [a for a in args.split() if not a.startswith("--")][:-1]
        for source in sources:
            path = image.context / source
            if not path.exists():
                raise SystemExit(f"{image.dockerfile}: COPY source {source} is not in the context {image.context}")
            found = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            files.update(p for p in found if not ignored(p.relative_to(image.context).as_posix(), patterns))
    return sorted(files)


def base_key() -> str:
    return hashlib.sha256(BASE_RECIPE.read_bytes()).hexdigest()[:16]


def key(image: Image) -> str:
    digest = hashlib.sha256()
    for part in (base_key(), image.ref, repr(image.build_args), image.dockerfile.read_text()):
        digest.update(part.encode() + b"\0")
    for path in context_files(image):
        digest.update(path.relative_to(image.context).as_posix().encode() + b"\0")
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    explicit = os.environ.get("CRYPTOLAKE_IMAGE_CACHE")
    root = Path(explicit) if explicit else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") \
        / "cryptolake" / "images"
    root.mkdir(parents=True, exist_ok=True)
    return root


def archive(image: Image) -> Path:
    return cache_dir() / f"{image.name}-{key(image)}.tar"


# -- buildah -----------------------------------------------------------------------------------------------------

def log(message: str) -> None:
    print(f"images: {message}", flush=True)


def run(*argv: str, capture: bool = False, quiet: bool = False) -> str:
    """Runs argv, failing on a non-zero status; capture returns its stdout, quiet drops it."""
    stdout = subprocess.PIPE if capture else subprocess.DEVNULL if quiet else None
    result = subprocess.run(argv, check=True, text=True, stdout=stdout)
    return (result.stdout or "").strip()


def label(ref: str, name: str) -> str | None:
    found = subprocess.run(["buildah", "inspect", "--type", "image", ref], capture_output=True, text=True)
    if found.returncode != 0:
        return None
    return (json.loads(found.stdout)["OCIv1"]["config"].get("Labels") or {}).get(name)


def save(ref: str, target: Path) -> None:
    """buildah storage -> docker-archive tar, written beside the target and renamed, so a tar is always whole."""
    partial = target.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    run("buildah", "push", "--quiet", ref, f"docker-archive:{partial}:{ref}")
    partial.rename(target)


def ensure_base() -> None:
    """debian:trixie-slim in buildah's storage, made by debian/rootfs.sh, or loaded from its cached archive."""
    wanted = base_key()
    if label(BASE, RECIPE_LABEL) == wanted:
        return
    tar = cache_dir() / f"debian-trixie-slim-{wanted}.tar"
    if not tar.exists():
        started = time.monotonic()
        log(f"making {BASE} from Debian's archive (debian/rootfs.sh, recipe {wanted})")
        work = Path(tempfile.mkdtemp(prefix="rootfs.", dir=cache_dir()))
        try:
            run(str(BASE_RECIPE), str(work / "rootfs"))
            container = run("buildah", "from", "scratch", capture=True)
            mount = run("buildah", "mount", container, capture=True)
            run("bash", "-c", 'tar -C "$1" -cf - . | tar -C "$2" -xpf - --numeric-owner', "copy",
                str(work / "rootfs"), mount)
            run("buildah", "umount", container)
            run("buildah", "config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--cmd", "bash", "--label", f"{RECIPE_LABEL}={wanted}", container)
            run("buildah", "commit", "--quiet", "--format", "docker", "--rm", container, BASE)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        save(BASE, tar)
        log(f"{BASE}: {time.monotonic() - started:.0f} s, {tar.stat().st_size / 1e6:.0f} MB ({tar.name})")
    else:
        image_id = run("buildah", "pull", "--quiet", f"docker-archive:{tar}", capture=True).splitlines()[-1]
        run("buildah", "tag", image_id, BASE)
        log(f"{BASE}: loaded from {tar.name}")
    if label(BASE, RECIPE_LABEL) != wanted:
        raise SystemExit(f"images: {BASE} in buildah's storage does not carry recipe {wanted}")


def check(image: Image) -> None:
    """The image runs: its check command in a fresh container, as the image's own user."""
    if not image.check:
        return
    container = run("buildah", "from", "--pull=never", "--quiet", image.ref, capture=True)
    try:
        run("buildah", "run", container, "--", *image.check, quiet=True)
    finally:
        run("buildah", "rm", container, quiet=True)


def trust_mounts(work: Path) -> list[str]:
    """`buildah bud --volume` options that make RUN steps trust what the host trusts. Their downloads (PyPI, Maven
    Central) leave through this machine's network, whose TLS may be inspected by a proxy only the host's CA bundle
    knows: a copy of the host's bundles is bind-mounted read-only (in no layer), and pip (/etc/pip.conf) and Maven
    (/etc/mavenrc) are pointed at it, so the Dockerfiles stay exactly what `docker build` builds. buildah 1.28
    leaves the three mount points in layers with a RUN step, empty."""
    (work / "pip.conf").write_text(f"[global]\ncert = {MOUNTED_CA}/ca-certificates.crt\n")
    (work / "mavenrc").write_text(f'MAVEN_OPTS="$MAVEN_OPTS -Djavax.net.ssl.trustStore={MOUNTED_CA}/cacerts"\n')
    for bundle in (HOST_CA, HOST_JAVA_CA):
        if bundle.is_file():
            shutil.copy(bundle, work / bundle.name)
    return [f"--volume={work}:{MOUNTED_CA}:ro", f"--volume={work}/pip.conf:/etc/pip.conf:ro",
            f"--volume={work}/mavenrc:/etc/mavenrc:ro"]


def build(image: Image) -> Path:
    target = archive(image)
    if target.exists():
        log(f"{image.name}: cached ({target.name})")
        return target
    if any(k == "FROM" and qualified(a.split()[0]) == BASE for k, a in instructions(image.dockerfile)):
        ensure_base()
    started = time.monotonic()
    log(f"{image.name}: building {image.ref} from {os.path.relpath(image.dockerfile, REPO)}")
    with tempfile.TemporaryDirectory(prefix="trust.", dir=cache_dir()) as work:
        run("buildah", "bud", "--pull=never", "--layers", "--format", "docker", *trust_mounts(Path(work)),
            "--file", str(image.dockerfile), "--tag", image.ref,
            *(f"--build-arg={k}={v}" for k, v in image.build_args), str(image.context))
    built = time.monotonic() - started
    check(image)
    save(image.ref, target)
    for stale in cache_dir().glob(f"{image.name}-*.tar"):  # earlier builds of this image: gigabytes each
        if stale != target and re.fullmatch(rf"{re.escape(image.name)}-[0-9a-f]{{16}}\.tar", stale.name):
            stale.unlink()
    log(f"{image.name}: built in {built:.0f} s, checked and saved in {time.monotonic() - started:.0f} s, "
        f"{target.stat().st_size / 1e6:.0f} MB ({target.name})")
    return target


# -- containerd --------------------------------------------------------------------------------------------------

def containerd_address() -> str:
    explicit = os.environ.get("CRYPTOLAKE_CONTAINERD_ADDRESS")
    if explicit:
        return explicit
    state = Path(os.environ.get("CRYPTOLAKE_CLUSTER_DIR") or REPO / ".local" / "cluster")
    return str(state / "containerd" / "containerd.sock")


def node_up(address: str) -> bool:
    return Path(address).is_socket() and subprocess.run(
        ["ctr", "--address", address, "version"], capture_output=True).returncode == 0


def archive_config(tar: Path) -> str:
    """The config digest (the image id) of a docker-archive tar."""
    with tarfile.open(tar) as archive_file:
        [entry] = json.load(archive_file.extractfile("manifest.json"))
        return "sha256:" + hashlib.sha256(archive_file.extractfile(entry["Config"]).read()).hexdigest()


def imported_config(address: str, ref: str, namespace: str = NAMESPACE) -> str | None:
    """The config digest of the image containerd holds under ref, or None."""
    ctr = ["ctr", "--address", address, "--namespace", namespace]
    rows = run(*ctr, "images", "list", f"name=={ref}", capture=True).splitlines()[1:]
    if not rows:
        return None
    manifest = json.loads(run(*ctr, "content", "get", rows[0].split()[2], capture=True))
    if "manifests" in manifest:  # an index: the linux/amd64 manifest
        [entry] = [m for m in manifest["manifests"] if m.get("platform", {}).get("architecture") == "amd64"]
        manifest = json.loads(run(*ctr, "content", "get", entry["digest"], capture=True))
    return manifest["config"]["digest"]


def import_archive(address: str, ref: str, tar: Path, namespace: str = NAMESPACE) -> bool:
    """Imports tar unless containerd already holds ref with its config; True when it imported. Afterwards the
    image under ref must be the archive's, whatever was there before."""
    wanted = archive_config(tar)
    if imported_config(address, ref, namespace) == wanted:
        return False
    run("ctr", "--address", address, "--namespace", namespace, "images", "import", str(tar),
        quiet=True)
    found = imported_config(address, ref, namespace)
    if found != wanted:
        raise SystemExit(f"images: containerd holds {ref} with config {found} after the import, not {wanted}")
    return True


def import_images(selected: list[Image], address: str) -> None:
    if not node_up(address):
        raise SystemExit(f"images: no containerd answers on {address}: start the node (make cluster-up) or set "
                         "CRYPTOLAKE_CONTAINERD_ADDRESS")
    for image in selected:
        target = archive(image)
        if not target.exists():
            raise SystemExit(f"images: {image.name} is not built for the current sources: run make cluster-images")
        started = time.monotonic()
        done = import_archive(address, image.ref, target)
        log(f"{image.name}: {'imported' if done else 'already in the node'} as {image.ref} "
            f"({time.monotonic() - started:.1f} s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["build", "import", "up", "list"])
    parser.add_argument("names", nargs="*", help="images to act on (default: all)")
    args = parser.parse_args(argv)
    known = images()
    unknown = set(args.names) - {i.name for i in known}
    if unknown:
        parser.error(f"unknown image(s) {sorted(unknown)}; known: {[i.name for i in known]}")
    selected = [i for i in known if not args.names or i.name in args.names]
    if args.action == "list":
        for image in selected:
            target = archive(image)
            print(image.name, image.ref, target, "built" if target.exists() else "not built")
        return
    if args.action in ("build", "up"):
        with open(cache_dir() / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time: buildah's layers and the tars are shared
            for image in selected:
                build(image)
    address = containerd_address()
    if args.action == "import" or (args.action == "up" and node_up(address)):
        import_images(selected, address)
    elif args.action == "up":
        log(f"the node is not up ({address}): images built, not imported")


if __name__ == "__main__":
    main()
