"""Every chart and image version the docs name is the one pinned where it is used: the upstream chart versions in
the Makefile, the base images in the Dockerfiles' FROM lines, the chart's PostgreSQL in its values, the kind node
image in kind-config.yaml. A doc that names no version for a chart it installs installs whatever is newest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.chart.render import CHART, REPO
from tests.chart.upstream import makefile_variable

DOCS = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md", REPO / "charts" / "README.md",
                                                REPO / "charts" / "values" / "airflow.yaml",
                                                REPO / "charts" / "values" / "spark-operator.yaml"]
DOCKERFILES = [REPO / "services" / "Dockerfile", REPO / "spark_apps" / "Dockerfile", REPO / "dags" / "Dockerfile",
               *sorted((REPO / "cluster" / "images").glob("*/Dockerfile"))]
# upstream chart reference in a helm command -> the Makefile variable pinning its version
CHARTS = {"spark-operator/spark-operator": "SPARK_OPERATOR_CHART_VERSION",
          "apache-airflow/airflow": "AIRFLOW_CHART_VERSION"}
VERSION = r"\d+(?:\.\d+)+"


def commands(path: Path) -> list[str]:
    """Lines of a doc with their `\\` continuations joined (a helm command across lines is one)."""
    return re.sub(r"\\\n\s*(#\s*)?", " ", path.read_text()).splitlines()


def docs_text() -> str:
    return "\n".join(path.read_text() for path in DOCS)


@pytest.mark.parametrize("chart", sorted(CHARTS))
def test_every_documented_helm_install_of_an_upstream_chart_pins_the_makefiles_version(chart):
    pinned = makefile_variable(CHARTS[chart])
    found = [(path.name, line) for path in DOCS for line in commands(path)
             if re.search(rf"helm (install|upgrade)\b.*\s{re.escape(chart)}(\s|$)", line)]
    assert found, f"no doc installs {chart}"
    for name, line in found:
        assert re.search(rf"--version {re.escape(pinned)}(\s|$)", line), f"{name}: {line.strip()} (pin: {pinned})"


def test_chart_versions_named_in_prose_are_the_makefiles():
    """`chart 2.5.2` next to the Spark Operator, `chart 1.22.0` next to Airflow: the last of the two named before it
    on the line, else the chart whose values file it is in. History (`since chart 1.21.0`) and bounds (`1.21+`)
    name no pin."""
    pins = {"spark-operator": makefile_variable("SPARK_OPERATOR_CHART_VERSION"),
            "airflow": makefile_variable("AIRFLOW_CHART_VERSION")}
    named = 0
    for path in DOCS:
        for line in path.read_text().splitlines():
            start = 0
            for match in re.finditer(rf"(?<!since )\bchart ({VERSION})(?![\w.+])", line, re.IGNORECASE):
                owners = re.findall(r"spark-operator|airflow", line[start:match.start()], re.IGNORECASE)
                owner = owners[-1].lower() if owners else path.stem
                assert owner in pins, f"{path.name}: a chart version without its chart: {line.strip()}"
                assert match.group(1) == pins[owner], f"{path.name}: {line.strip()}"
                start, named = match.end(), named + 1
    assert named


def dockerfile_bases() -> dict[str, set[str]]:
    """Image repository -> the versions (leading numbers of the tag, else the whole tag: trixie-slim) the
    Dockerfiles build FROM."""
    bases: dict[str, set[str]] = {}
    for dockerfile in DOCKERFILES:
        for image, tag in re.findall(r"^FROM (\S+?):(\S+)", dockerfile.read_text(), re.MULTILINE):
            version = re.match(VERSION, tag)
            bases.setdefault(image, set()).add(version.group(0) if version else tag)
    return bases


def test_base_images_named_in_the_docs_are_the_dockerfiles():
    bases = dockerfile_bases()
    assert {"debian", "apache/airflow"} <= set(bases)
    mentions = re.findall(rf"\b({'|'.join(re.escape(b) for b in bases)}):({VERSION}|[a-z][\w.-]*[a-z])", docs_text())
    assert {image for image, _ in mentions} == set(bases)
    for image, version in mentions:
        assert {version} == bases[image], f"docs name {image}:{version}, the Dockerfiles build on {bases[image]}"


def test_the_postgresql_major_named_in_the_docs_is_the_charts():
    tag = yaml.safe_load((CHART / "values.yaml").read_text())["postgresql"]["image"]["tag"]
    mentions = re.findall(r"\bpostgres:(\d+)\.", docs_text())
    assert mentions and set(mentions) == {tag.split(".")[0]}


def test_kind_nodes_run_one_node_image_pinned_by_digest_and_the_docs_name_it():
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    images = {node.get("image") for node in config["nodes"]}
    assert len(images) == 1, images
    (image,) = images
    assert re.fullmatch(rf"kindest/node:v{VERSION}@sha256:[0-9a-f]{{64}}", image or ""), image
    assert f"`{image.split('@')[0]}`" in docs_text()


def test_the_spark_operator_built_for_the_node_is_the_chart_version_the_makefile_pins():
    """cluster/spark-operator/go.mod pins the Go module whose binary and chart the node installs: the same release as
    the chart `make deploy` installs on kind."""
    go_mod = (REPO / "cluster" / "spark-operator" / "go.mod").read_text()
    required = re.findall(r"^\s*(?:require\s+)?github\.com/kubeflow/spark-operator/v2 v(\S+)(?:\s|$)", go_mod,
                          re.MULTILINE)
    assert required == [makefile_variable("SPARK_OPERATOR_CHART_VERSION")]
