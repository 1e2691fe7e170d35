"""The chart's task script (bucket-init, the `helm test` checks) run for real against the local stack's
SeaweedFS and PostgreSQL, with the environment the chart gives its pods."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import uuid

import boto3
import pytest

from tests.chart.render import CHART

SCRIPT = CHART / "files" / "chart_tasks.py"


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "CHART_TASK_ATTEMPTS": "2", "CHART_TASK_PAUSE_SECONDS": "0.2",
                               **env})


@pytest.fixture
def pod_env(stack_env) -> dict[str, str]:
    """The stack's settings with a fresh bucket as the lake, as the chart's ConfigMap and Secret would give."""
    env = {k: v for k, v in stack_env.items() if k.startswith(("AWS_", "WAREHOUSE_URL"))}
    return {**env, "LAKE_URI": f"s3://chart-{uuid.uuid4().hex[:12]}"}


def test_bucket_init_creates_the_bucket_and_the_spark_events_prefix_idempotently(pod_env):
    bucket = pod_env["LAKE_URI"].removeprefix("s3://")
    client = boto3.client("s3", endpoint_url=pod_env["AWS_ENDPOINT_URL"], region_name=pod_env["AWS_REGION"],
                          aws_access_key_id=pod_env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=pod_env["AWS_SECRET_ACCESS_KEY"])
    failed = run(pod_env, "check-s3")
    assert failed.returncode != 0 and "error: check s3://" in failed.stderr
    first = run(pod_env, "bucket-init")
    assert first.returncode == 0, first.stderr
    assert f"bucket s3://{bucket} created" in first.stdout
    assert client.get_object(Bucket=bucket, Key="spark-events/.keep")["Body"].read() == b""
    again = run(pod_env, "bucket-init")
    assert again.returncode == 0 and f"bucket s3://{bucket} exists" in again.stdout
    checked = run(pod_env, "check-s3")
    assert checked.returncode == 0 and "spark-events/.keep is readable" in checked.stdout


def test_bucket_init_fails_clearly_with_wrong_credentials(pod_env):
    result = run({**pod_env, "AWS_SECRET_ACCESS_KEY": "wrong"}, "bucket-init")
    assert result.returncode != 0 and "failed after 2 attempts" in result.stderr


def test_the_postgresql_check_queries_the_warehouse_and_fails_on_a_bad_password(pod_env):
    ok = run(pod_env, "check-postgresql")
    assert ok.returncode == 0 and "ok: the warehouse answers: PostgreSQL" in ok.stdout, ok.stderr
    url = pod_env["WAREHOUSE_URL"]
    user_info, host = url.split("@", 1)
    bad = run({**pod_env, "WAREHOUSE_URL": f"{user_info.rsplit(':', 1)[0]}:wrong-password@{host}"},
              "check-postgresql")
    assert bad.returncode != 0 and "error: check PostgreSQL" in bad.stderr


def test_the_history_check_reads_the_servers_version():
    class Api(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            body = json.dumps({"spark": "4.2.0"}).encode() if self.path == "/api/v1/version" else b"{}"
            self.send_response(200 if self.path == "/api/v1/version" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        ok = run({}, "check-history", url)
        assert ok.returncode == 0 and "Spark History Server 4.2.0 answers" in ok.stdout
    finally:
        server.shutdown()
    down = run({}, "check-history", url)
    assert down.returncode != 0 and "error: check the Spark History Server" in down.stderr
    usage = run({}, "nonsense")
    assert usage.returncode != 0 and "usage: chart_tasks.py" in usage.stderr
