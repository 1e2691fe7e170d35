"""Alerts reach a person: a failed run of the backup DAG and a stale warehouse seen by the status DAG each deliver
exactly one mail, through a real SMTP server (aiosmtpd, with the login of the Airflow connection), naming what
failed and holding none of the secrets in the environment.

The path is production's, without a scheduler loop: Airflow's metadata database (SQLite) is written by a real
`airflow dag-processor` parsing dags/; each DAG run is created as the scheduler creates it, its task runs for
real through the Task SDK as the last of its tries (no retry wait), the scheduler's own `DagRun.update_state`
decides the run failed and makes the callback request, and the DAG processor runs the DAG's on_failure_callback
(the spec's SmtpNotifier behind cryptolake's AlertNotifier), asking the run's task states and the status task's
XCom through the Task SDK as it does in a deployment.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cryptolake import pipeline
from cryptolake.spark_apps.transform.tables import TABLE_LIST
from cryptolake.warehouse.migrate import engine_for, upgrade
from tests.orchestration.conftest import DAG_FOLDER
from tests.reliability.secret_scan import assert_no_secrets
from tests.warehouse.conftest import fresh_database

SMTP_LOGIN, SMTP_PASSWORD = "alerts", "smtp-pw-5f0c2a9e71"
CMC_API_KEY = "cmc-key-8d41f0b7a2"
AWS_SECRET = "aws-secret-3e9b77c4d1"
UNREACHABLE_PASSWORD = "wh-pw-b61d0e4f93"
NEVER_LOADED = "fact_market_sentiment"  # the stale warehouse's one table without a load
WAIT = 180  # seconds: a bound for the polls, not a performance claim
# The server is on loopback and only the test talks to it: a login without TLS is what it is meant to accept.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    """aiosmtpd's handler: every message the server accepted, as (envelope, parsed message)."""

    def __init__(self):
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope, email.message_from_bytes(envelope.content, policy=email.policy.default)))
        return "250 OK"


@pytest.fixture(scope="module")
def smtp():
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    def authenticate(server, session, envelope, mechanism, data):
        return AuthResult(success=(data.login, data.password) == (SMTP_LOGIN.encode(), SMTP_PASSWORD.encode()))

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port(), authenticator=authenticate,
                            auth_require_tls=False, auth_required=True)
    controller.start()
    yield controller, mailbox
    controller.stop()


@pytest.fixture(scope="module")
def stale_warehouse(stack_env):
    """Every table last loaded ten days ago but one, never loaded: the status check must name them all."""
    with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
        engine = engine_for(url)
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO meta.load_watermark (table_name, delta_version, loaded_at, rows, "
                                    "run_id) VALUES (:t, 1, :at, 10, 'test')"),
                               [{"t": t.name, "at": datetime.now(timezone.utc) - timedelta(days=10)}
                                for t in TABLE_LIST if t.name != NEVER_LOADED])
        engine.dispose()
        yield url


@pytest.fixture(scope="module")
def alerts(smtp, stale_warehouse, dagbags, tmp_path_factory):
    """Both failed runs and the mail they caused: {dag_id: (run_id, [messages naming that run])}, plus every
    secret that was in the environment."""
    from airflow.utils import db

    controller, mailbox = smtp
    home = Path(os.environ["AIRFLOW_HOME"])
    db.initdb()  # the conftest's throwaway AIRFLOW_HOME: SQLite there
    secrets = [SMTP_PASSWORD, CMC_API_KEY, AWS_SECRET, UNREACHABLE_PASSWORD, make_url(stale_warehouse).password]
    common = {
        "CRYPTOLAKE_DAG_BACKEND": "local", "CMC_API_KEY": CMC_API_KEY, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_ACCESS_KEY_ID": "test", "LAKE_URI": tmp_path_factory.mktemp("lake").as_uri(),
        "AIRFLOW_CONN_CRYPTOLAKE_SMTP": json.dumps({
            "conn_type": "smtp", "host": controller.hostname, "port": controller.port, "login": SMTP_LOGIN,
            "password": SMTP_PASSWORD, "extra": {"disable_tls": True, "disable_ssl": True}}),
    }
    processor_env = {
        **os.environ, **common,
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([{
            "name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(DAG_FOLDER)}}]),
        # parsed once at start; after that only the callbacks make it parse the file again
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
    }
    log = home / "dag-processor.log"
    with open(log, "w") as out:
        processor = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "dag-processor"],
                                     env=processor_env, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
    try:
        _wait("the DAG processor to store the DAGs", lambda: _parsed(processor, log, ("backup", "status")))
        runs = {}
        with pytest.MonkeyPatch.context() as patch:
            for key, value in common.items():
                patch.setenv(key, value)
            # the backup's pg_dump finds no server there
            patch.setenv("WAREHOUSE_URL", f"postgresql+psycopg2://cryptolake:{UNREACHABLE_PASSWORD}@127.0.0.1:"
                                          f"{_free_port()}/cryptolake")
            runs["backup"] = _fail_a_run(dagbags["local"].dags["backup"])
            patch.setenv("WAREHOUSE_URL", stale_warehouse)
            runs["status"] = _fail_a_run(dagbags["local"].dags["status"])
        _wait("both alerts", lambda: len(mailbox.messages) >= 2 or _dead(processor, log))
    finally:
        _stop(processor)
    return {dag_id: (run_id, [m for _, m in mailbox.messages if run_id in _body(m)])
            for dag_id, run_id in runs.items()}, mailbox.messages, secrets


def _stop(processor: subprocess.Popen) -> None:
    """SIGTERM (the DAG processor gives its parsing processes a few seconds to finish), SIGKILL to the group
    if it is still there after a minute."""
    processor.terminate()
    try:
        processor.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(processor.pid, signal.SIGKILL)
        processor.wait()


def _wait(what: str, check) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {WAIT} s")
        time.sleep(0.2)


def _dead(processor: subprocess.Popen, log: Path) -> bool:
    if processor.poll() is not None:
        raise AssertionError(f"the DAG processor exited with {processor.returncode}:\n{log.read_text()[-3000:]}")
    return False


def _parsed(processor: subprocess.Popen, log: Path, dag_ids: tuple[str, ...]) -> bool:
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session

    _dead(processor, log)
    with create_session() as session:
        return all(DBDagBag().get_latest_version_of_dag(d, session=session) for d in dag_ids)


def _fail_a_run(dag) -> str:
    """A manual run of the DAG's only task, run for real as its last try; the scheduler's verdict on the run goes
    to the DAG processor as the scheduler sends it. Returns the run id."""
    from airflow.callbacks.database_callback_sink import DatabaseCallbackSink
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.sdk.api.datamodels._generated import TaskInstance as TaskInstanceSDK
    from airflow.sdk.execution_time.supervisor import run_task_in_process
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    now = datetime.now(timezone.utc)
    with create_session() as session:
        run = DBDagBag().get_latest_version_of_dag(dag.dag_id, session=session).create_dagrun(
            run_id=DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=now, run_after=now),
            logical_date=now, data_interval=(now, now), run_after=now, run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.TEST, state=DagRunState.RUNNING, conf=None, start_date=now,
            session=session)
        (ti,) = run.get_task_instances(session=session)
        ti.try_number = ti.max_tries + 1  # the last try: a failure fails the task, no retry to wait for
        ti.state = TaskInstanceState.QUEUED
        session.commit()
        task = TaskInstanceSDK(id=UUID(str(ti.id)), task_id=ti.task_id, dag_id=ti.dag_id, run_id=ti.run_id,
                               try_number=ti.try_number, map_index=ti.map_index,
                               dag_version_id=UUID(str(ti.dag_version_id)))
        run_id, run_key = run.run_id, run.id
    result = run_task_in_process(ti=task, task=dag.get_task(task.task_id))
    assert result.ti.state == TaskInstanceState.FAILED, result.ti.state
    with create_session() as session:
        run = session.get(DagRun, run_key)
        run.dag = DBDagBag().get_latest_version_of_dag(dag.dag_id, session=session)
        _, callback = run.update_state(session=session, execute_callbacks=False)
        assert run.state == DagRunState.FAILED and callback is not None and callback.is_failure_callback
    DatabaseCallbackSink().send(callback)
    return run_id


def _body(message) -> str:
    return message.get_body(("html", "plain")).get_content()


def test_a_failed_run_sends_one_mail_naming_the_dag_run_and_failed_task_with_its_log_link(alerts, spec):
    by_dag, _, _ = alerts
    run_id, messages = by_dag["backup"]
    assert len(messages) == 1, [m["Subject"] for m in messages]
    (message,) = messages
    args = spec.airflow.alerts.args
    assert message["Subject"] == "[cryptolake] backup failed: backup"
    assert (message["From"], message["To"]) == (args["from_email"], ", ".join(args["to"]))
    body = _body(message)
    assert f"The Airflow DAG run backup / {run_id} failed (task_failure)." in body
    assert "/tasks/backup" in body and "/dags/backup/runs/" in body  # the task's page, where its log is


def test_a_stale_warehouse_sends_one_mail_naming_the_tables_that_are_not_ok(alerts):
    by_dag, _, _ = alerts
    run_id, messages = by_dag["status"]
    assert len(messages) == 1, [m["Subject"] for m in messages]
    (message,) = messages
    stale = [t.name for t in TABLE_LIST if t.name != NEVER_LOADED]
    assert message["Subject"].startswith(f"[cryptolake] warehouse NOT OK: {len(stale)} stale (")
    assert f"1 never ({NEVER_LOADED})" in message["Subject"]
    body = _body(message)
    for table in stale:
        assert f"- {table} (STALE): last refreshed " in body, table
    assert f"- {NEVER_LOADED} (NEVER): never loaded into the warehouse" in body
    assert f"The Airflow DAG run status / {run_id} failed" in body and "/tasks/status" in body


def test_no_alert_holds_a_secret_of_the_environment(alerts):
    _, messages, secrets = alerts
    assert len(messages) == 2
    outputs = {f"message {i}": envelope.content.decode() + "\n" + _body(message)
               for i, (envelope, message) in enumerate(messages)}
    assert_no_secrets(outputs, secrets)


def test_the_status_pod_reads_the_report_from_the_log_it_streams(dagbags, stale_warehouse, tmp_path):
    """The kubernetes backend sees the command's output only as the pod's log, line by line through the
    operator's log_formatter (what the provider calls for each line it streams into the task log)."""
    from cryptolake.orchestration.alerts import read_report

    env = {**os.environ, "WAREHOUSE_URL": stale_warehouse, "LAKE_URI": tmp_path.as_uri()}
    done = subprocess.run([str(Path(sys.executable).parent / "cryptolake"), "status", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    task = dagbags["kubernetes"].dags["status"].get_task("status")
    task._lines = []  # what execute() starts with
    log = ['{"ts": "2026-12-07T10:45:01Z", "level": "info", "msg": "reading the ledger"}', *done.stdout.splitlines()]
    shown = [task.log_formatter("base", line) for line in log]
    task.log_formatter("airflow-xcom-sidecar", "}")  # another container's lines are not the command's
    assert shown == [f"[base] {line}" for line in log]  # the task log is unchanged
    assert read_report(task._lines) == json.loads(done.stdout)
    assert read_report(["Error: cannot reach the warehouse: connection refused"]) is None  # exit status 1
