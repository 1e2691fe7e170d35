"""Airflow 3 on the local stack (`cryptolake local airflow`, `make airflow`): the repo's DAGs with the local
backend, metadata in the stack's PostgreSQL, every task a `cryptolake` subprocess against the stack.

Loopback only: the simple auth manager makes every visitor an admin, which is what a laptop UI wants and what a
shared machine must never run. The JWT secret is generated once and kept in the state directory.
"""

from __future__ import annotations

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

    def env(self) -> dict[str, str]:
        """The environment of every Airflow component, and so of every task's `cryptolake` subprocess."""
        stack_env = {**self.stack.env(), **self.settings}
        warehouse = stack_env["WAREHOUSE_URL"]
        conn_id = pipeline.default().airflow.warehouse_conn_id
        bin_dir = str(Path(sys.executable).parent)
        return {
            **os.environ, **stack_env,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "CRYPTOLAKE_DAG_BACKEND": "local",
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
            f"AIRFLOW_CONN_{conn_id.upper()}": warehouse.replace("postgresql+psycopg2://", "postgresql://", 1),
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
        self.stack.up()
        self._create_database()
        env = self.env()
        self._airflow(env, "db", "migrate")
        policy = pipeline.default().airflow
        self._airflow(env, "pools", "set", policy.api_pool, str(policy.api_pool_slots),
                      "CoinMarketCap API calls at once (pipeline spec: airflow.api_pool)")
        return env

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
