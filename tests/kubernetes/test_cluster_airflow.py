"""On the real apiserver: Airflow on this machine with the kubernetes backend (`cryptolake local airflow
--kubeconfig`) takes its connections from the cluster, never from the local stack."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from cryptolake import pipeline
from cryptolake.errors import LocalStackError
from cryptolake.local.airflow import ClusterAirflow
from cryptolake.local.stack import LocalStack
from tests.kubernetes.conftest import REPO

pytestmark = pytest.mark.timeout(1800)  # the session's apiserver may have to be built first (see conftest.py)

AIRFLOW_NAMESPACE = "airflow"
PASSWORD = "loader-pw-7Qx"


def _warehouse_secret() -> tuple[str, str]:
    values = yaml.safe_load((REPO / "charts" / "values" / "airflow.yaml").read_text())
    env = f"AIRFLOW_CONN_{pipeline.default().airflow.warehouse_conn_id.upper()}"
    entry = next(e for e in values["secret"] if e["envName"] == env)
    return entry["secretName"], entry["secretKey"]


@pytest.fixture
def cluster(apiserver):
    """The cluster as the chart and charts/kind-secrets.sh leave it: the PostgreSQL Service in the jobs
    namespace and Airflow's warehouse connection naming it by its cluster DNS name."""
    jobs = pipeline.default().kubernetes.namespace
    for namespace in (jobs, AIRFLOW_NAMESPACE):
        apiserver.ensure_namespace(namespace)
    apiserver.kubectl("apply", "-n", jobs, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "cryptolake-postgresql"},
        "spec": {"selector": {"app": "postgres"}, "ports": [{"port": 5432}]}}))
    address = apiserver.kubectl("get", "service", "-n", jobs, "cryptolake-postgresql",
                                "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
    name, key = _warehouse_secret()
    url = (f"postgresql+psycopg2://cryptolake_loader_user:{PASSWORD}"
           f"@cryptolake-postgresql.{jobs}.svc.cluster.local:5432/cryptolake")
    manifest = apiserver.kubectl("create", "secret", "generic", name, "-n", AIRFLOW_NAMESPACE,
                                 f"--from-literal={key}={url}", "--dry-run=client", "-o", "json").stdout
    apiserver.kubectl("apply", "-f", "-", input=manifest)
    yield address
    apiserver.kubectl("delete", "secret", "-n", AIRFLOW_NAMESPACE, name)
    apiserver.kubectl("delete", "service", "-n", jobs, "cryptolake-postgresql")


def test_tasks_reach_the_cluster_and_its_warehouse_by_cluster_ip_and_nothing_local_leaks(apiserver, cluster,
                                                                                      tmp_path):
    stack = LocalStack(tmp_path / "state", pg_port=1, s3_port=2)  # never started: only its settings exist
    airflow = ClusterAirflow(stack, apiserver.kubeconfig)
    env = airflow.task_env()

    assert env["CRYPTOLAKE_DAG_BACKEND"] == "kubernetes"
    kube = json.loads(env["AIRFLOW_CONN_KUBERNETES_DEFAULT"])
    assert kube["conn_type"] == "kubernetes"
    assert kube["extra"]["kube_config_path"] == str(apiserver.kubeconfig.resolve())
    conn_id = pipeline.default().airflow.warehouse_conn_id.upper()
    assert env[f"AIRFLOW_CONN_{conn_id}"] == (
        f"postgresql://cryptolake_loader_user:{PASSWORD}@{cluster}:5432/cryptolake")
    # The local stack's lake, warehouse, API key and sandbox are for the local backend only.
    for setting in stack.env():
        assert setting not in env, f"{setting} of the local stack would reach the cluster's tasks"
    assert airflow.home != stack.state_dir / "airflow" and airflow.metadata_database != "airflow"
    # Airflow standalone starts its parts as `airflow ...` subprocesses: this environment's, first on PATH
    assert airflow.env()["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_a_missing_kubeconfig_says_how_to_get_one(tmp_path):
    with pytest.raises(LocalStackError, match="no kubeconfig") as failure:
        ClusterAirflow(LocalStack(tmp_path / "state"), tmp_path / "nowhere" / "kubeconfig")
    assert "make cluster-up" in failure.value.hint
