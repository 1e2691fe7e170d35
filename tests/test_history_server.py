"""Spark's History Server on the local stack: a real transform's application, jobs and SQL through its REST API.

The stack's server watches `s3a://cryptolake/spark-events`, the stack lake's root. A transform in a test writes
under its own prefix (`s3://cryptolake/tests/<uuid>`), so the transform test starts a second History Server,
the same code on its own port and state directory, over that prefix's event logs; the stack's own server is
checked with a small Spark application of a unique name written to the root's event logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, time as clock

import pytest
import requests

from cryptolake.errors import LocalStackError
from cryptolake.lake import SPARK_EVENTS
from cryptolake.local.history import HistoryServer
from cryptolake.local.process import port_open
from cryptolake.local.stack import DEFAULT_HISTORY_PORT, LocalStack
from tests.conftest import REPO, TEST_HISTORY_PORT, TEST_STATE_DIR, other_addresses
from tests.sandbox_process import free_port
from tests.transform.bronze import Market

APPEAR_TIMEOUT = 120  # the server scans every 2s; parsing a fresh log on a busy machine takes longer


def applications(url: str) -> list[dict]:
    answer = requests.get(f"{url}/api/v1/applications", timeout=10)
    answer.raise_for_status()
    return answer.json()


def wait_for_application(url: str, name: str) -> tuple[dict, float]:
    """The completed application of that name, polled until it appears (bounded); and how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < APPEAR_TIMEOUT:
        found = [a for a in applications(url) if a["name"] == name and a["attempts"][-1]["completed"]]
        if found:
            return found[0], time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"{name} did not appear in {url}/api/v1/applications within {APPEAR_TIMEOUT}s")


def cryptolake(*args: str, env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryptolake", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=900)


def timed(work) -> float:
    started = time.monotonic()
    work()
    return time.monotonic() - started


@pytest.mark.spark
@pytest.mark.timeout(1800)  # a transform and two JVMs on 2 shared cores: over 10 minutes at a load of 30
def test_a_transform_shows_up_with_its_jobs_and_sql(stack_env, s3_lake, tmp_path):
    Market().write_day(s3_lake, date(2026, 11, 2), times=[clock(9)],
                       extractors=["crypto_listings_latest", "global_metrics_latest", "fear_greed_latest"])
    history = HistoryServer(tmp_path / "state", free_port(), {**stack_env, "LAKE_URI": s3_lake.uri})
    with ThreadPoolExecutor(1) as pool:
        try:
            ready = pool.submit(timed, history.up)  # its JVM starts while the transform runs
            done = cryptolake("--log-json", "transform", "--group", "10x",
                              env={**stack_env, "LAKE_URI": s3_lake.uri}, cwd=tmp_path)
            print(f"History Server ready in {ready.result():.1f}s")
            assert done.returncode == 0, done.stderr[-3000:]
            check_application(history.url, s3_lake)
        finally:
            history.down()
    assert not port_open(history.port)


def check_application(url: str, lake) -> None:
    """The transform's application, jobs and SQL as its History Server serves them."""
    app, waited = wait_for_application(url, "cryptolake-transform-10x")
    print(f"application listed {waited:.1f}s after the transform ended")
    assert app["attempts"][-1]["logSourceFullPath"] == lake.spark_uri(SPARK_EVENTS)
    rolled = [f for f in lake.list_files(SPARK_EVENTS) if f"/eventlog_v2_{app['id']}/events_" in f]
    assert rolled, "the application's event log is not a rolling one"  # what it read

    base = f"{url}/api/v1/applications/{app['id']}"
    # the first request about an application replays its event log: slow on a busy machine
    jobs = requests.get(f"{base}/jobs", timeout=300).json()
    assert len(jobs) > 0 and {job["status"] for job in jobs} == {"SUCCEEDED"}
    sql = requests.get(f"{base}/sql", params={"details": "true", "length": "1000"}, timeout=120).json()
    assert sql and all(query["status"] == "COMPLETED" for query in sql)
    descriptions = sorted({query["description"] for query in sql})
    # silver Delta tables (Delta's own queries are described so) built from bronze Parquet scans
    assert any(d.startswith("Delta: ") for d in descriptions), descriptions
    assert any("parquet" in query["planDescription"].lower() for query in sql), descriptions
    assert any("silver/fact_crypto_market" in query["planDescription"] for query in sql), descriptions


def test_the_stack_runs_it_on_loopback_with_no_secret_on_its_command_line(stack, stack_env):
    assert stack.status()["history"] == f"running on http://127.0.0.1:{TEST_HISTORY_PORT}"
    assert stack_env["SPARK_HISTORY_URL"] == f"http://127.0.0.1:{TEST_HISTORY_PORT}"
    assert requests.get(f"{stack_env['SPARK_HISTORY_URL']}/api/v1/version", timeout=10).json()["spark"]

    pid = stack.history.daemon.pid()
    cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode()
    assert "HistoryServer" in cmdline and "hadoop-aws" in cmdline  # the S3A jars are on its classpath
    assert stack_env["AWS_SECRET_ACCESS_KEY"] not in cmdline
    properties = stack.history.properties
    assert oct(properties.stat().st_mode & 0o777) == "0o600"
    assert stack_env["AWS_SECRET_ACCESS_KEY"] not in properties.read_text()
    assert "spark.history.fs.logDirectory=s3a://cryptolake/spark-events" in properties.read_text()

    others = other_addresses()
    assert others, "no non-loopback address answers here: nothing to prove the loopback-only binding against"
    for ip in others:
        assert not port_open(TEST_HISTORY_PORT, ip)


def test_local_status_and_env_show_its_url(stack):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "cryptolake", "local", "--state-dir", str(TEST_STATE_DIR), *args],
                              capture_output=True, text=True, timeout=120)

    url = f"http://127.0.0.1:{TEST_HISTORY_PORT}"
    status = cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"running on {url}" in status.stdout
    assert f"export SPARK_HISTORY_URL={url}" in cli("env").stdout.splitlines()


@pytest.mark.spark
def test_the_stack_server_lists_an_application_of_the_stack_lake(stack, stack_env, tmp_path):
    """Spark apps on the stack's lake (`s3://cryptolake`) write event logs where the stack's server looks."""
    name = f"history-probe-{uuid.uuid4().hex[:8]}"
    probe = ("import sys\nfrom cryptolake.settings import Settings\n"
             "from cryptolake.spark_apps.session import build_spark_session\n"
             "spark = build_spark_session(sys.argv[1], Settings.load())\n"
             "assert spark.range(100).selectExpr('sum(id)').collect()[0][0] == 4950\nspark.stop()\n")
    done = subprocess.run([sys.executable, "-c", probe, name], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO), **stack_env}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    app, waited = wait_for_application(stack_env["SPARK_HISTORY_URL"], name)
    print(f"probe application listed {waited:.1f}s after it ended")
    jobs = requests.get(f"{stack_env['SPARK_HISTORY_URL']}/api/v1/applications/{app['id']}/jobs", timeout=30).json()
    assert jobs and all(job["status"] == "SUCCEEDED" for job in jobs)


def test_a_stack_json_from_before_the_history_server_still_loads(tmp_path):
    state_dir = tmp_path / "stack"
    config = LocalStack(state_dir).config.__dict__
    older = {key: value for key, value in config.items() if key != "history_port"}
    (state_dir / "stack.json").write_text(json.dumps(older))
    stack = LocalStack(state_dir)
    assert stack.config.history_port == DEFAULT_HISTORY_PORT
    assert stack.status()["history"] == "stopped"
    assert LocalStack(state_dir, history_port=28081).env()["SPARK_HISTORY_URL"] == "http://127.0.0.1:28081"


def test_up_refuses_to_move_a_running_history_server_to_another_port(stack):
    saved = (TEST_STATE_DIR / "stack.json").read_text()
    with pytest.raises(LocalStackError, match="history is running on another port"):
        LocalStack(TEST_STATE_DIR, history_port=TEST_HISTORY_PORT + 1).up()
    assert (TEST_STATE_DIR / "stack.json").read_text() == saved
    assert stack.history.healthy()
