"""cluster/images/images.py: the names the node gets, the cache key (what rebuilds an image and what does not), and
the import into containerd, proven on a containerd of the test's own (no CRI, its own socket and root) with a tiny
image buildah builds from scratch: what containerd holds afterwards has the config of the built archive."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("cluster_images", REPO / "cluster" / "images" / "images.py")
images = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = images  # dataclasses look their module up there
_spec.loader.exec_module(images)


def test_images_are_named_as_the_manifests_and_the_chart_name_them_on_the_node():
    from cryptolake.pipeline import default

    refs = {i.name: i.ref for i in images.images()}
    spec = default().kubernetes.images
    values = yaml.safe_load((REPO / "charts" / "cryptolake" / "values.yaml").read_text())
    pg, sw = values["postgresql"]["image"], values["objectStore"]["seaweedfs"]["image"]
    # the kubelet resolves the short names to these (Docker Hub rules); buildah's default would be localhost/...
    assert refs == {"extract": f"docker.io/library/{spec['extract']}", "spark": f"docker.io/library/{spec['spark']}",
                    "sandbox": "docker.io/library/" + spec["extract"].replace("extract", "sandbox"),
                    "postgres": f"docker.io/library/{pg['repository']}:{pg['tag']}",
                    "seaweedfs": f"docker.io/{sw['repository']}:{sw['tag']}"}
    assert images.qualified("quay.io/minio/minio:x") == "quay.io/minio/minio:x"
    assert images.qualified("localhost/a:1") == "localhost/a:1"


def tiny(context: Path, text: str) -> images.Image:
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text("FROM scratch\nCOPY payload /payload\nCOPY tree /tree\n")
    (context / "payload").write_text(text)
    (context / "tree" / "__pycache__").mkdir(parents=True, exist_ok=True)
    (context / "tree" / "a.txt").write_text("a")
    (context / ".dockerignore").write_text("*\n!payload\n!tree/\n**/__pycache__\n")
    return images.Image("tiny", "docker.io/library/cryptolake-test-tiny:1", context / "Dockerfile", context)


def test_the_key_follows_the_dockerfile_the_copied_files_and_arguments_but_not_ignored_ones(tmp_path):
    image = tiny(tmp_path / "ctx", "one")
    first = images.key(image)
    assert [p.relative_to(image.context).as_posix() for p in images.context_files(image)] == ["payload", "tree/a.txt"]
    (image.context / "tree" / "__pycache__" / "a.pyc").write_bytes(b"cache")  # .dockerignore drops it
    (image.context / "unrelated.txt").write_text("not copied")
    assert images.key(image) == first
    (image.context / "tree" / "a.txt").write_text("b")
    second = images.key(image)
    assert second != first
    (image.context / "tree" / "a.txt").chmod(0o755)  # COPY keeps the mode: it is an input too
    assert images.key(image) != second
    assert images.key(images.Image(**{**image.__dict__, "build_args": (("X", "1"),)})) != images.key(image)


@pytest.fixture
def containerd(tmp_path):
    """A containerd of its own: no CRI, state and socket under tmp_path; yields its address."""
    root = tmp_path / "containerd"
    (root / "config.toml").parent.mkdir(parents=True)
    (root / "config.toml").write_text('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
    address = root / "containerd.sock"
    log = open(root / "log", "w")
    process = subprocess.Popen(["containerd", "--config", str(root / "config.toml"), "--root", str(root / "root"),
                                "--state", str(root / "state"), "--address", str(address)],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if images.node_up(str(address)):
                break
            assert process.poll() is None, (root / "log").read_text()
            time.sleep(0.1)
        yield str(address)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        subprocess.run(["umount", "--recursive", str(root / "root")], capture_output=True)


def built(image: images.Image, tmp_path: Path, name: str) -> Path:
    subprocess.run(["buildah", "bud", "--quiet", "--format", "docker", "--file", str(image.dockerfile),
                    "--tag", image.ref, str(image.context)], check=True, capture_output=True)
    target = tmp_path / f"{name}.tar"
    images.save(image.ref, target)
    return target


def test_import_puts_the_built_image_into_containerd_once_and_replaces_a_stale_one(tmp_path, containerd):
    one = tiny(tmp_path / "one", "one")
    first = built(one, tmp_path, "one")
    try:
        assert images.imported_config(containerd, one.ref) is None
        assert images.import_archive(containerd, one.ref, first) is True
        assert images.imported_config(containerd, one.ref) == images.archive_config(first)
        assert images.import_archive(containerd, one.ref, first) is False  # already there: nothing to do
        # The sources changed: the new build under the same name replaces the old one.
        second = built(tiny(tmp_path / "two", "two"), tmp_path, "two")
        assert images.archive_config(second) != images.archive_config(first)
        assert images.import_archive(containerd, one.ref, second) is True
        assert images.imported_config(containerd, one.ref) == images.archive_config(second)
        # An archive that does not carry the expected name leaves the node's image as it was: refused.
        other = tiny(tmp_path / "three", "three")
        other = images.Image("other", "docker.io/library/cryptolake-test-other:1", other.dockerfile, other.context)
        third = built(other, tmp_path, "three")
        with pytest.raises(SystemExit, match="after the import"):
            images.import_archive(containerd, one.ref, third)
    finally:
        for ref in (one.ref, "docker.io/library/cryptolake-test-other:1"):
            subprocess.run(["buildah", "rmi", "--force", ref], capture_output=True)


def test_import_refuses_when_no_containerd_answers(tmp_path):
    with pytest.raises(SystemExit, match="no containerd answers"):
        images.import_images([], str(tmp_path / "missing.sock"))


def test_a_built_archive_is_reused_without_buildah(tmp_path, monkeypatch):
    """A second build with nothing changed finds its archive and runs nothing (buildah is off PATH here)."""
    monkeypatch.setenv("CRYPTOLAKE_IMAGE_CACHE", str(tmp_path / "cache"))
    image = tiny(tmp_path / "ctx", "one")
    images.archive(image).write_bytes(b"a previous build")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert images.build(image) == images.archive(image)
    (image.context / "payload").write_text("changed")
    with pytest.raises(FileNotFoundError):
        images.build(image)  # changed: it must build, and buildah cannot be found


def test_a_build_replaces_the_archive_of_the_previous_sources(tmp_path, monkeypatch):
    """Archives are gigabytes: a build of changed sources removes its image's earlier archive, no other file."""
    monkeypatch.setenv("CRYPTOLAKE_IMAGE_CACHE", str(tmp_path / "cache"))
    image = tiny(tmp_path / "ctx", "one")
    try:
        first = images.build(image)
        assert images.archive_config(first)
        foreign = tmp_path / "cache" / "tiny-operator.tar"  # another tool's file in the shared folder
        foreign.write_bytes(b"not ours")
        (image.context / "payload").write_text("two")
        second = images.build(image)
        assert second != first and second.exists() and not first.exists() and foreign.exists()
    finally:
        subprocess.run(["buildah", "rmi", "--force", image.ref], capture_output=True)
