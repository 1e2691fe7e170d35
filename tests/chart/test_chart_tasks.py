"""The chart's task script (bucket-init, the `helm test` checks) run for real against the local stack's
SeaweedFS and PostgreSQL, with the environment the chart gives its pods."""

from __future__ import annotations

import http.server
import importlib.util
import json
import subprocess
import sys
import threading
import uuid
import xml.etree.ElementTree as ElementTree

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


def bucket_client(env: dict[str, str]):
    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


@pytest.fixture
def tasks(pod_env, monkeypatch):
    """The script imported, with the pod's environment, so a botocore event hook can watch its S3 client's
    requests to the real server."""
    for key, value in pod_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CHART_TASK_ATTEMPTS", "2")
    monkeypatch.setenv("CHART_TASK_PAUSE_SECONDS", "0.2")
    spec = importlib.util.spec_from_file_location("chart_tasks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hooked(tasks, monkeypatch, event: str, handler) -> None:
    """Every S3 client the script makes calls `handler` on `event` (botocore's event names)."""
    make = tasks.s3_client

    def client():
        made = make()
        made.meta.events.register(event, handler)
        return made

    monkeypatch.setattr(tasks, "s3_client", client)


@pytest.mark.parametrize("region, constraint", [("eu-west-1", "eu-west-1"), ("ap-southeast-2", "ap-southeast-2"),
                                                ("us-east-1", None)])
def test_bucket_init_creates_the_bucket_in_its_region(tasks, pod_env, monkeypatch, capsys, region, constraint):
    """S3 outside us-east-1 refuses a CreateBucket without the region as LocationConstraint
    (IllegalLocationConstraintException) and refuses one naming us-east-1 (InvalidLocationConstraint).
    SeaweedFS accepts both, so the test reads the body the request carried to it."""
    monkeypatch.setenv("AWS_REGION", region)
    bodies: list[bytes | None] = []
    hooked(tasks, monkeypatch, "before-send.s3.CreateBucket", lambda request, **_: bodies.append(request.body))
    tasks.bucket_init()
    bucket = pod_env["LAKE_URI"].removeprefix("s3://")
    assert f"bucket s3://{bucket} created" in capsys.readouterr().out
    bucket_client(pod_env).head_bucket(Bucket=bucket)
    assert len(bodies) == 1
    if constraint is None:
        assert not bodies[0]
    else:
        sent = ElementTree.fromstring(bodies[0])
        assert sent.tag == "{http://s3.amazonaws.com/doc/2006-03-01/}CreateBucketConfiguration"
        assert [(e.tag.rsplit("}", 1)[1], e.text) for e in sent] == [("LocationConstraint", constraint)]


def test_bucket_init_takes_a_bucket_made_meanwhile_as_existing(tasks, pod_env, monkeypatch, capsys):
    """The hook Job and the History Server's init container run bucket-init at the same time on install: the
    other one may create the bucket between this one's HeadBucket (404) and its CreateBucket, which the real
    server then answers BucketAlreadyOwnedByYou. That is success, not a failed attempt."""
    bucket = pod_env["LAKE_URI"].removeprefix("s3://")
    other = bucket_client(pod_env)

    def the_other_creates_it(**_) -> None:  # a before-call handler's return value would replace the call
        other.create_bucket(Bucket=bucket)

    hooked(tasks, monkeypatch, "before-call.s3.CreateBucket", the_other_creates_it)
    tasks.bucket_init()
    out = capsys.readouterr().out
    assert f"bucket s3://{bucket} exists" in out and "failed" not in out
    assert other.get_object(Bucket=bucket, Key="spark-events/.keep")["Body"].read() == b""


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
