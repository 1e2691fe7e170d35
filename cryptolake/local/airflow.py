"""Airflow 3 on this machine (`cryptolake local airflow`, `make airflow`): the repo's DAGs, metadata in the local
stack's PostgreSQL. Two backends:
- local (LocalAirflow): every task a `cryptolake` subprocess against the local stack;
- kubernetes (ClusterAirflow, `--kubeconfig`): every task a pod or SparkApplication on a cluster where the
  cryptolake chart is installed; the tasks get their settings and credentials from the chart's ConfigMap and
  Secrets there, never from this machine's stack.

Loopback only: the simple auth manager makes every visitor an admin, which is what a laptop UI wants and what a
shared machine must never run. The JWT secret is generated once and kept in the state directory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from cryptolake import logs, pipeline
from cryptolake.errors import LocalStackError
from cryptolake.local.process import Daemon, http_ok, refuse_taken_port, wait_until
from cryptolake.local.stack import LocalStack

DEFAULT_PORT = 18280
METADATA_DATABASE = "airflow"
CLUSTER_METADATA_DATABASE = "airflow_cluster"


def dags_folder() -> Path:
    """The checkout's dags/ (they are rendered from the spec there, not shipped in the wheel)."""
    folder = Path(__file__).resolve().parents[2] / "dags"
    if not (folder / "cryptolakehouse.py").exists():
        raise LocalStackError(f"no DAG files in {folder}", "Run this from a checkout of the repository "
                              "(`make generate` renders dags/ from the pipeline spec)")
    return folder


class LocalAirflow:
    def __init__(self, stack: LocalStack, port: int = DEFAULT_PORT, settings: dict[str, str] | None = None,
                 metadata_database: str = METADATA_DATABASE):
        """`settings` override the stack's for the tasks, and `metadata_database` names Airflow's own (another
        lake prefix, warehouse and DAG-run history, in tests)."""
        self.stack = stack
        self.port = port
        self.settings = settings or {}
        self.metadata_database = metadata_database
        self.home = stack.state_dir / "airflow"
        self.log_file = stack.state_dir / "logs" / "airflow.log"
        self.daemon = Daemon("airflow", stack.state_dir / "airflow.pid", marker="airflow standalone")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def task_env(self) -> dict[str, str]:
        """What the tasks need from this machine: the stack's settings for the `cryptolake` subprocesses and the
        warehouse connection post-load SQL runs on."""
        stack_env = {**self.stack.env(), **self.settings}
        conn_id = pipeline.default().airflow.warehouse_conn_id
        return {
            **stack_env,
            "CRYPTOLAKE_DAG_BACKEND": "local",
            f"AIRFLOW_CONN_{conn_id.upper()}": _connection_uri(stack_env["WAREHOUSE_URL"]),
        }

    def env(self) -> dict[str, str]:
        """The environment of every Airflow component, and so of every task's subprocess."""
        bin_dir = str(Path(sys.executable).parent)  # `airflow` and `cryptolake` of this environment
        return {
            **os.environ, **self.task_env(),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.stack.postgres.url(self.metadata_database),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret(),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        }

    def _jwt_secret(self) -> str:
        path = self.home / "jwt-secret"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def prepare(self) -> dict[str, str]:
        """The stack up, the metadata database created and migrated, the API pool set: returns the env."""
        self.start_stack()
        self._create_database()
        env = self.env()
        self._airflow(env, "db", "migrate")
        policy = pipeline.default().airflow
        self._airflow(env, "pools", "set", policy.api_pool, str(policy.api_pool_slots),
                      "CoinMarketCap API calls at once (pipeline spec: airflow.api_pool)")
        return env

    def start_stack(self) -> None:
        self.stack.up()

    def up(self) -> None:
        """Airflow standalone in the background; returns once its API answers."""
        if not self.daemon.running():
            refuse_taken_port(self.port, "the Airflow API", "--port")
            env = self.prepare()
            self.daemon.start([self.executable(), "standalone"], self.log_file, env)
        wait_until(self.healthy, 240, "Airflow", self.log_file)

    def down(self) -> bool:
        return self.daemon.stop(timeout=30, whole_group=True)

    def healthy(self) -> bool:
        return http_ok(f"{self.url}/api/v2/monitor/health")

    def _create_database(self) -> None:
        import psycopg2
        from psycopg2 import sql

        connection = psycopg2.connect(self.stack.postgres.url("postgres").replace("postgresql+psycopg2", "postgresql"))
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.metadata_database,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.metadata_database)))
        finally:
            connection.close()

    def executable(self) -> str:
        beside = Path(sys.executable).parent / "airflow"
        found = str(beside) if beside.exists() else shutil.which("airflow")
        if not found:
            raise LocalStackError("the airflow command is not installed",
                                  "Install it: pip install 'cryptolakehouse[airflow]' (make setup does)")
        return found

    def _airflow(self, env: dict[str, str], *args: str) -> None:
        done = subprocess.run([self.executable(), *args], env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            tail = logs.redact(" | ".join((done.stderr or done.stdout).strip().splitlines()[-3:]))
            raise LocalStackError(f"airflow {' '.join(args[:2])} failed: {tail}", f"See {self.log_file}")


def _connection_uri(sqlalchemy_url: str) -> str:
    """An Airflow connection URI from a SQLAlchemy URL (Airflow's postgres connections have no driver suffix)."""
    return sqlalchemy_url.replace("postgresql+psycopg2://", "postgresql://", 1)


class ClusterAirflow(LocalAirflow):
    """Airflow standalone on this machine with the kubernetes backend: the DAGs' pods and SparkApplications go
    to the cluster of `kubeconfig`, where the cryptolake chart runs. Only the metadata database is local (the
    stack's PostgreSQL); the lake, the sandbox and the History Server of the local stack are not started, and no
    local setting reaches a task.

    Post-load SQL runs here, on the warehouse connection of the cluster's Airflow Secret (charts/values/airflow.yaml
    names it), its in-cluster host name replaced by the Service's ClusterIP: this machine has no cluster DNS.
    """

    def __init__(self, stack: LocalStack, kubeconfig: Path, context: str | None = None, port: int = DEFAULT_PORT,
                 airflow_namespace: str = "airflow", metadata_database: str = CLUSTER_METADATA_DATABASE):
        super().__init__(stack, port, metadata_database=metadata_database)
        # apart from the local backend's Airflow: the same DAG ids, other tasks and another run history
        self.home = stack.state_dir / "airflow-cluster"
        self.log_file = stack.state_dir / "logs" / "airflow-cluster.log"
        self.daemon = Daemon("airflow", stack.state_dir / "airflow-cluster.pid", marker="airflow standalone")
        self.kubeconfig = kubeconfig.resolve()
        self.context = context
        self.airflow_namespace = airflow_namespace
        if not self.kubeconfig.is_file():
            raise LocalStackError(f"no kubeconfig at {self.kubeconfig}",
                                  "Bring the cluster up first (`make cluster-up` prints its kubeconfig)")

    def start_stack(self) -> None:
        self.stack.postgres.up()

    def task_env(self) -> dict[str, str]:
        policy = pipeline.default().airflow
        extra = {"kube_config_path": str(self.kubeconfig),
                 "namespace": pipeline.default().kubernetes.namespace}
        if self.context:
            extra["cluster_context"] = self.context
        return {
            "CRYPTOLAKE_DAG_BACKEND": "kubernetes",
            "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps({"conn_type": "kubernetes", "extra": extra}),
            f"AIRFLOW_CONN_{policy.warehouse_conn_id.upper()}": self.warehouse_connection(),
        }

    def warehouse_connection(self) -> str:
        """The cluster Airflow's warehouse connection, reachable from this machine."""
        import base64

        from kubernetes import client, config

        api = config.new_client_from_config(config_file=str(self.kubeconfig), context=self.context)
        try:
            core = client.CoreV1Api(api)
            env_name = f"AIRFLOW_CONN_{pipeline.default().airflow.warehouse_conn_id.upper()}"
            secret_name, key = _airflow_secret(env_name)
            secret = core.read_namespaced_secret(secret_name, self.airflow_namespace)
            if key not in (secret.data or {}):
                raise LocalStackError(f"Secret {self.airflow_namespace}/{secret_name} has no key {key!r}",
                                      "Create the cluster's Secrets first (charts/kind-secrets.sh)")
            return self.reachable(core, _connection_uri(base64.b64decode(secret.data[key]).decode()))
        finally:
            api.close()

    @staticmethod
    def reachable(core, url: str) -> str:
        """`url` with a Service's cluster DNS name (<service>.<namespace>[.svc[.<domain>]]) replaced by its
        ClusterIP, which this machine reaches; its password registered for redaction."""
        from urllib.parse import urlsplit, urlunsplit

        uri = urlsplit(url)
        if uri.password:
            logs.register_secret(uri.password)
        labels = (uri.hostname or "").split(".")
        if len(labels) >= 2 and (len(labels) == 2 or labels[2] == "svc") and not labels[0].isdigit():
            address = core.read_namespaced_service(labels[0], labels[1]).spec.cluster_ip
            credentials = uri.netloc.rpartition("@")[0]
            host = f"{address}:{uri.port}" if uri.port else address
            uri = uri._replace(netloc=f"{credentials}@{host}" if credentials else host)
        return urlunsplit(uri)


def _airflow_secret(env_name: str) -> tuple[str, str]:
    """(Secret, key) the cluster's Airflow takes `env_name` from: charts/values/airflow.yaml's `secret` list."""
    import yaml

    values_file = Path(__file__).resolve().parents[2] / "charts" / "values" / "airflow.yaml"
    for entry in yaml.safe_load(values_file.read_text()).get("secret", []):
        if entry.get("envName") == env_name:
            return entry["secretName"], entry["secretKey"]
    raise LocalStackError(f"{values_file} names no Secret for {env_name}",
                          "Add it to the `secret` list there (the cluster's Airflow reads it the same way)")
