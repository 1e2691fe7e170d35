"""Airflow's own scheduler runs the 10x DAG on the local backend (`make airflow`'s setup) to success.

Airflow 3 standalone on the test stack (metadata in its PostgreSQL), the DAG triggered through the REST API as a
user would, every task a `cryptolake` subprocess. The DAG writes to a lake prefix and a warehouse of its own;
without an init run the coins are unknown, so their quotes wait in meta.rejected_rows (nothing dropped) while
the global market and sentiment rows land.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timezone

import pytest
import requests
from sqlalchemy import create_engine, text

from cryptolake import pipeline
from cryptolake.local.airflow import LocalAirflow
from cryptolake.warehouse.migrate import upgrade
from tests.warehouse.conftest import fresh_database

AIRFLOW_PORT = int(os.environ.get("CRYPTOLAKE_TEST_AIRFLOW_PORT", "18290"))
RUN_TIMEOUT = 900  # seconds: a bound for the poll loop, not a performance claim


def _wait(what: str, check, timeout: float, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s")


@pytest.fixture(scope="module")
def warehouse(stack_env):
    with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
        engine = create_engine(url)
        upgrade(engine)
        yield url, engine
        engine.dispose()


@pytest.fixture(scope="module")
def airflow(stack, warehouse):
    """Airflow with a metadata database of its own: no DAG run of an earlier session is left to run."""
    suffix = uuid.uuid4().hex[:8]
    settings = {"LAKE_URI": f"s3://cryptolake/tests/airflow-{suffix}", "WAREHOUSE_URL": warehouse[0]}
    local = LocalAirflow(stack, AIRFLOW_PORT, settings=settings, metadata_database=f"airflow_test_{suffix}")
    try:
        local.up()
        yield local
    finally:
        local.down()
        admin = create_engine(stack.postgres.url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "airflow_test_{suffix}" WITH (FORCE)'))
        admin.dispose()


def api(airflow: LocalAirflow, method: str, path: str, **kwargs) -> dict:
    token = requests.get(f"{airflow.url}/auth/token", timeout=30).json()["access_token"]
    answer = requests.request(method, f"{airflow.url}/api/v2/{path}", timeout=60,
                              headers={"Authorization": f"Bearer {token}"}, **kwargs)
    assert answer.ok, f"{method} {path}: {answer.status_code} {answer.text[:500]}"
    return answer.json()


@pytest.mark.timeout(RUN_TIMEOUT * 2)  # Airflow's start, then the schedule's slot and ours one after the other
def test_the_scheduler_runs_the_10x_dag_to_success_and_the_warehouse_gets_fresh_rows(airflow, warehouse):
    started = datetime.now(timezone.utc)
    _wait("the 10x DAG to be parsed", lambda: requests.get(f"{airflow.url}/api/v2/monitor/health", timeout=10).ok
          and _dag_known(airflow, "10x"), 180)
    api(airflow, "PATCH", "dags/10x", json={"is_paused": False})
    run = api(airflow, "POST", "dags/10x/dagRuns", json={"logical_date": None})
    run_id = run["dag_run_id"]

    def finished():
        state = api(airflow, "GET", f"dags/10x/dagRuns/{run_id}")["state"]
        return state if state in ("success", "failed") else None

    state = _wait("the 10x run to finish", finished, RUN_TIMEOUT, every=5)
    # Unpausing also started the schedule's latest slot (catchup off runs the most recent interval): it ran
    # before ours (one active run at a time) and must have succeeded as well.
    def all_finished():
        found = api(airflow, "GET", "dags/10x/dagRuns")["dag_runs"]
        return found if all(r["state"] in ("success", "failed") for r in found) else None

    runs = _wait("every 10x run to finish", all_finished, RUN_TIMEOUT, every=5)
    assert {r["run_type"] for r in runs} <= {"manual", "scheduled"} and {r["state"] for r in runs} == {"success"}
    tasks = api(airflow, "GET", f"dags/10x/dagRuns/{run_id}/taskInstances")["task_instances"]
    states = {t["task_id"]: t["state"] for t in tasks}
    assert state == "success", states
    spec = pipeline.default()
    extract_tasks = [t for t in tasks if t["task_id"].startswith("extract.")]
    assert {t["pool"] for t in extract_tasks} == {spec.airflow.api_pool}
    assert len(extract_tasks) == len(spec.extract_jobs("10x"))
    assert {s for t, s in states.items() if t != "extract_failed"} == {"success"}
    assert states["extract_failed"] == "skipped"  # the leaf that fails a run only when an extractor failed

    _, engine = warehouse
    with engine.connect() as connection:
        for table in ("fact_global_market", "fact_market_sentiment"):
            fresh = connection.execute(text(
                f"SELECT count(*) FROM dw.{table} WHERE snapshot_timestamp >= :since"), {"since": started}).scalar()
            assert fresh >= 1, table
        waiting = connection.execute(text(
            "SELECT count(*), count(DISTINCT row_key->>'snapshot_timestamp'), count(DISTINCT reason) "
            "FROM meta.rejected_rows WHERE table_name = 'fact_crypto_market' AND resolved_at IS NULL")).one()
    # each run's top 1,000 quotes, kept until init loads the coins they belong to
    assert waiting == (1000 * len(runs), len(runs), 1)


def _dag_known(airflow: LocalAirflow, dag_id: str) -> bool:
    token = requests.get(f"{airflow.url}/auth/token", timeout=30).json()["access_token"]
    return requests.get(f"{airflow.url}/api/v2/dags/{dag_id}", headers={"Authorization": f"Bearer {token}"},
                        timeout=30).ok
