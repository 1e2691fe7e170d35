"""The kind end-to-end harness cannot run here (no Docker): it imports, its --help works, it names the images
the pipeline spec names, and every kind target says it skips, in one line, exiting 0, where Docker is absent."""

from __future__ import annotations

import importlib.util
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cryptolake.pipeline import default
from tests.e2e import harness as common

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "e2e" / "kind_e2e.py"


def test_the_harness_imports_and_has_its_entry_points():
    spec = importlib.util.spec_from_file_location("kind_e2e", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.main) and module.DAGS == ("init", "10x")


def harness():
    spec = importlib.util.spec_from_file_location("kind_e2e", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_harness_names_what_the_chart_and_values_files_name():
    """Namespaces, the sandbox the kind profile's NetworkPolicy lets the extractors reach, the History Server port,
    the SparkApplication and pod labels it follows: the same as charts/, manifests/ and the Makefile say."""
    module = harness()
    chart = yaml.safe_load((REPO / "charts" / "cryptolake" / "values.yaml").read_text())
    kind = yaml.safe_load((REPO / "charts" / "cryptolake" / "values-kind.yaml").read_text())
    makefile = (REPO / "Makefile").read_text()
    assert module.AIRFLOW_NAMESPACE == chart["airflow"]["namespace"]
    assert f"-n {module.SPARK_OPERATOR_NAMESPACE} --create-namespace" in makefile
    assert chart["jobsNamespace"] == default().kubernetes.namespace  # the harness's jobs namespace is the spec's
    [rule] = [r for r in kind["networkPolicy"]["extractEgress"] if r["namespace"] == common.SANDBOX_NAMESPACE]
    assert common.SANDBOX_PORT in rule["ports"]
    assert rule["podLabels"].items() <= common.SANDBOX_LABELS.items()
    # the labels the log keeper and the checks select on are those of the manifests and the DAGs' extractor pods
    manifest = yaml.safe_load((REPO / "manifests" / "spark" / "10x-transform.yaml").read_text())
    assert manifest["metadata"]["name"].startswith("cryptolake-10x-transform")
    assert manifest["spec"]["driver"]["labels"]["app.kubernetes.io/component"] == "spark-transform"
    assert manifest["spec"]["driver"]["labels"]["cryptolake/group"] == "10x"
    assert module.LogKeeper.kind({"spark-role": "driver", **manifest["spec"]["driver"]["labels"]}) == "driver"


def test_the_log_keeper_recognises_the_extractor_pods_the_dags_start(monkeypatch):
    """The 10x DAG's extractor pods (kubernetes backend, as in the Airflow image) carry the labels the harness
    sorts logs by: component extract and the group."""
    monkeypatch.setenv("CRYPTOLAKE_DAG_BACKEND", "kubernetes")
    dags = runpy.run_path(str(REPO / "dags" / "cryptolakehouse.py"))
    pods = [task for task in dags["10x"].tasks if type(task).__name__ == "KubernetesPodOperator"]
    assert pods
    for task in pods:
        assert harness().LogKeeper.kind(task.labels) == "extract" and task.labels["cryptolake/group"] == "10x"
        assert task.namespace == default().kubernetes.namespace


def test_help_lists_the_options():
    run = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    for option in ("--cluster", "--skip-build", "--timeout-init", "--timeout-10x", "--print-images"):
        assert option in run.stdout


def test_print_images_names_the_spec_images_the_sandbox_variant_and_the_airflow_values_image():
    run = subprocess.run([sys.executable, str(SCRIPT), "--print-images"], capture_output=True, text=True,
                         timeout=60, check=True)
    images = default().kubernetes.images
    airflow = yaml.safe_load((REPO / "charts" / "values" / "airflow.yaml").read_text())["images"]["airflow"]
    assert run.stdout.split() == [images["extract"], images["spark"],
                                  images["extract"].replace("cryptolake-extract", "cryptolake-sandbox"),
                                  f"{airflow['repository']}:{airflow['tag']}"]
    assert run.stdout.split()[-1] == "cryptolake-airflow:0.1.0"


def recording(tmp_path: Path, *tools: str) -> tuple[dict[str, str], Path]:
    """Fake `tools` first on PATH: each succeeds and appends its argv (one line) to the returned log."""
    log = tmp_path / "calls.log"
    for tool in tools:
        fake = tmp_path / tool
        fake.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n')
        fake.chmod(0o755)
    return {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}, log


def test_make_images_builds_each_image_from_its_dockerfile_and_kind_load_loads_all_four(tmp_path):
    """The recipes run for real against a docker and a kind that only record their arguments: one `docker build`
    per image (the Airflow image from dags/Dockerfile, tagged as charts/values/airflow.yaml says) and one
    `kind load` of the four tags."""
    env, log = recording(tmp_path, "docker", "kind")
    for target in ("images", "kind-load"):
        subprocess.run(["make", "-s", "--no-print-directory", target], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120, check=True)
    calls = [line for line in log.read_text().splitlines() if line != "docker info"]
    spec = default().kubernetes.images
    sandbox = spec["extract"].replace("cryptolake-extract", "cryptolake-sandbox")
    assert calls == [
        f"docker build -f services/Dockerfile -t {spec['extract']} .",
        f"docker build -f services/Dockerfile --build-arg EXTRAS=extract,sandbox -t {sandbox} .",
        f"docker build -f spark_apps/Dockerfile -t {spec['spark']} .",
        "docker build -f dags/Dockerfile -t cryptolake-airflow:0.1.0 .",
        f"kind load docker-image --name cryptolake {spec['extract']} {spec['spark']} {sandbox} "
        "cryptolake-airflow:0.1.0",
    ]


@pytest.mark.parametrize("target", ["kind-up", "images", "kind-load", "deploy", "e2e-kind"])
def test_kind_targets_skip_in_one_line_without_docker(target, tmp_path):
    """A `docker` whose `info` fails, first on PATH: the target prints one line and exits 0, touching nothing."""
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["make", "-s", "--no-print-directory", target], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"{target} skipped: no Docker engine on this machine (docker info failed); "
                                       "run it where Docker runs"]
