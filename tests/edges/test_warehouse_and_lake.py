"""A warehouse that is unreachable or refuses the password, and a lake that cannot be written or reached: every
command that touches them says so in one line, with what to do, and stores nothing half-way."""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.exceptions import ClientError
from sqlalchemy.engine import make_url

from cryptolake.ledger import Ledger
from cryptolake.lake import Lake
from tests.conftest import settings_for
from tests.edges.cli import error_line, run, tree_digest
from tests.sandbox_process import free_port
from tests.warehouse.conftest import fresh_database


@pytest.fixture(scope="module")
def warehouse(stack_env, tmp_path_factory):
    """A migrated database with one backup of it in a file lake: (url, lake root, backup id)."""
    root = tmp_path_factory.mktemp("wh-edges") / "lake"
    with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
        env = {**stack_env, "LAKE_URI": root.as_uri(), "WAREHOUSE_URL": url}
        assert run("migrate", env=env).returncode == 0
        done = run("backup", env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        yield url, root, done.stdout.strip().splitlines()[-1]


def _broken(url: str) -> dict[str, str]:
    """The same warehouse with a wrong password, and a server that is not there."""
    wrong = make_url(url).set(password=f"wrong-{uuid.uuid4().hex[:8]}").render_as_string(hide_password=False)
    gone = make_url(url).set(port=free_port()).render_as_string(hide_password=False)
    return {"wrong password": wrong, "unreachable": gone}


COMMANDS = [("migrate",), ("status",), ("backup",), ("restore", "{backup}", "--force"),
            ("restore", "{backup}", "--target", "{url}"), ("report", "--out", "{out}")]
REASON = {"wrong password": "password authentication failed", "unreachable": "Connection refused"}


@pytest.mark.parametrize("fault", sorted(REASON))
@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_a_broken_warehouse_url_is_one_line_per_command(warehouse, stack_env, fault, command, tmp_path):
    url, root, backup_id = warehouse
    broken = _broken(url)[fault]
    before = tree_digest(root)
    report = tmp_path / "report.html"
    args = [a.format(backup=backup_id, url=broken, out=report) for a in command]
    env = {**stack_env, "LAKE_URI": root.as_uri(), "WAREHOUSE_URL": broken}
    line = error_line(run(*args, env=env), REASON[fault])
    assert "Check" in line and ("URL" in line or "--target" in line)  # what to do: check the URL named
    assert make_url(broken).password not in line
    assert tree_digest(root) == before  # no half-written backup, the existing one untouched
    assert not report.exists()


def test_the_flag_names_the_warehouse_like_the_variable(warehouse, stack_env):
    url, root, _ = warehouse
    broken = _broken(url)["wrong password"]
    env = {**stack_env, "LAKE_URI": root.as_uri(), "WAREHOUSE_URL": url}
    error_line(run("--warehouse-url", broken, "status", env=env), "password authentication failed", "WAREHOUSE_URL")


def test_an_unwritable_file_lake_is_one_line_and_records_no_snapshot(stack_env, tmp_path):
    """A LAKE_URI under a file (unwritable whatever the user, root included): the extractor stops, clearly."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the lake should be")
    lake_uri = (blocker / "lake").as_uri()
    line = error_line(run("extract", "key_info", env={**stack_env, "LAKE_URI": lake_uri}), "cannot write",
                      lake_uri, "LAKE_URI must be a directory")
    assert "Not a directory" in line and blocker.read_text() == "a file where the lake should be"


def _s3(stack_env):
    return boto3.client("s3", endpoint_url=stack_env["AWS_ENDPOINT_URL"], region_name=stack_env["AWS_REGION"],
                        aws_access_key_id=stack_env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=stack_env["AWS_SECRET_ACCESS_KEY"])


def test_a_missing_bucket_is_one_line_and_not_created(stack_env):
    """The stack's SeaweedFS creates a bucket on put: a typo in LAKE_URI must not start a new lake silently."""
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    env = {**stack_env, "LAKE_URI": f"s3://{bucket}/lake"}
    error_line(run("extract", "key_info", env=env), f"the bucket '{bucket}' of LAKE_URI does not exist",
               "fix LAKE_URI")
    with pytest.raises(ClientError, match="404|Not Found|NoSuchBucket"):
        _s3(stack_env).head_bucket(Bucket=bucket)


@pytest.mark.parametrize("args", [("extract", "key_info"), ("status",)])
def test_an_unreachable_s3_endpoint_is_one_line(warehouse, stack_env, args):
    lake_uri = f"s3://cryptolake/tests/edges-{uuid.uuid4().hex[:8]}"
    env = {**stack_env, "LAKE_URI": lake_uri, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
           "WAREHOUSE_URL": warehouse[0]}
    error_line(run(*args, env=env), "cannot read the lake s3://cryptolake", "AWS_* settings",
               "the S3 server is up")
    assert Ledger(Lake.from_settings(settings_for(lake_uri, stack_env))).runs("extract", "key_info") == []
