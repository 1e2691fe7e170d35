"""The embedded stack for real: PostgreSQL and the S3 server answer, `up` is idempotent, `down` is clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid

import boto3
import psycopg2
import pytest
import requests
from sqlalchemy.engine import make_url

from cryptolake.local.process import port_open
from cryptolake.lake import Lake
from cryptolake.local.objectstore import ObjectStore
from cryptolake.local.stack import LocalStack
from cryptolake.settings import Settings
from tests.conftest import TEST_STATE_DIR, other_addresses
from tests.reliability.servers import free_s3_base


def _connect(url: str, database: str | None = None):
    u = make_url(url)
    return psycopg2.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                            dbname=database or u.database)


def test_postgres_creates_and_drops_a_database(stack_env):
    name = f"t_{uuid.uuid4().hex[:8]}"
    admin = _connect(stack_env["WAREHOUSE_URL"])
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    with _connect(stack_env["WAREHOUSE_URL"], name) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (snapshot_timestamp timestamptz PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES (now()) RETURNING 1")
        assert cur.fetchone() == (1,)
    conn.close()
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE {name}")
        cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
        assert cur.fetchone() == (0,)
    admin.close()


def test_postgres_listens_on_loopback_only_and_wants_a_password(stack):
    url = make_url(stack.env()["WAREHOUSE_URL"])
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(host="127.0.0.1", port=url.port, user=url.username, password="wrong", dbname="postgres")
    others = other_addresses()
    assert others, "no non-loopback address answers here: nothing to prove the loopback-only binding against"
    for ip in others:
        assert not port_open(url.port, ip)


def test_s3_server_bucket_put_and_list(stack_env):
    s3 = boto3.client("s3", endpoint_url=stack_env["AWS_ENDPOINT_URL"], region_name=stack_env["AWS_REGION"],
                      aws_access_key_id=stack_env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=stack_env["AWS_SECRET_ACCESS_KEY"])
    bucket = f"t-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    for key in ("bronze/a/1.parquet", "bronze/a/2.parquet", "silver/x"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="bronze/")
    assert [o["Key"] for o in listed["Contents"]] == ["bronze/a/1.parquet", "bronze/a/2.parquet"]
    assert s3.get_object(Bucket=bucket, Key="silver/x")["Body"].read() == b"silver/x"


def test_s3_server_rejects_wrong_credentials(stack_env):
    s3 = boto3.client("s3", endpoint_url=stack_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id=stack_env["AWS_ACCESS_KEY_ID"], aws_secret_access_key="not-the-secret")
    with pytest.raises(Exception, match="SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId"):
        s3.list_objects_v2(Bucket="cryptolake")


def test_the_s3_server_logs_to_its_log_file_only(tmp_path, monkeypatch):
    """SeaweedFS's glog also writes log files (up to 1.8 GB each) into the temp directory unless told to log to
    stderr, which is the stack's logs/s3.log."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    store = ObjectStore(tmp_path / "state", free_s3_base(), "glog-test", "glog-test-secret-key", "cryptolake")
    try:
        store.up()
    finally:
        store.down()
    assert sorted(p.name for p in temp.iterdir()) == []
    assert "Start Seaweed Master" in store.log_file.read_text(errors="replace")  # ... but to logs/s3.log


def _cli(state_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryptolake", "--log-json", "local", "--state-dir", str(state_dir),
                           "--pg-port", "25532", "--s3-port", "19200", "--sandbox-port", "18280",
                           "--history-port", "18281", *args],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture
def shared_tmp(tmp_path):
    """pytest's tmp dirs are private (0700); PostgreSQL's non-root user must be able to traverse the path."""
    path = TEST_STATE_DIR.parent / f"tmp-{uuid.uuid4().hex[:8]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_up_twice_is_harmless_and_down_leaves_nothing_listening(shared_tmp, stack):
    """A second stack in its own directory: its lifecycle must not touch the shared test stack."""
    state_dir = shared_tmp / "stack"
    first = _cli(state_dir, "up")
    assert first.returncode == 0, first.stderr
    second_stack = LocalStack(state_dir)
    pids = (second_stack.s3.daemon.pid(), (state_dir / "postgres/data/postmaster.pid").read_text().split()[0])
    second = _cli(state_dir, "up")
    assert second.returncode == 0, second.stderr
    assert (second_stack.s3.daemon.pid(), (state_dir / "postgres/data/postmaster.pid").read_text().split()[0]) == pids
    assert "running on 127.0.0.1:25532" in second.stdout
    assert "running on http://127.0.0.1:18280" in second.stdout
    assert _cli(state_dir, "status").returncode == 0
    env = dict(line.removeprefix("export ").split("=", 1) for line in _cli(state_dir, "env").stdout.splitlines())
    assert env["CMC_BASE_URL"] == "http://127.0.0.1:18280"
    answer = requests.get(env["CMC_BASE_URL"] + "/v1/key/info", headers={"X-CMC_PRO_API_KEY": env["CMC_API_KEY"]},
                          timeout=10)
    assert answer.status_code == 200 and answer.json()["data"]["plan"]["credit_limit_monthly"] == 10_000

    # a restart serves what was stored before as soon as `up` returns (SeaweedFS answers before its volumes)
    lake = Lake.from_settings(Settings.load(env={k: v.strip("'") for k, v in env.items()}))
    lake.write_bytes("_meta/probe/before-restart.json", b'{"kept": true}')
    assert _cli(state_dir, "down").returncode == 0
    assert _cli(state_dir, "up").returncode == 0
    assert lake.read_bytes("_meta/probe/before-restart.json") == b'{"kept": true}'

    ports = [25532, 18280, 18281, *second_stack.s3.ports()]
    down = _cli(state_dir, "down")
    assert down.returncode == 0, down.stderr
    assert [p for p in ports if port_open(p)] == []
    assert _cli(state_dir, "status").returncode == 3
    assert "was not running" in _cli(state_dir, "down").stdout
    assert all(state.startswith("running") for state in stack.status().values())


def test_credentials_are_private_and_stable(tmp_path):
    state_dir = tmp_path / "stack"
    env = LocalStack(state_dir).env()
    assert LocalStack(state_dir).env() == env
    assert oct((state_dir / "stack.json").stat().st_mode & 0o777) == "0o600"
