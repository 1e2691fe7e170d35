"""Shared fixtures: the real local stack (PostgreSQL, S3 server), lakes on both backends, one Spark session.

The test stack has its own state directory and ports, so `make test` neither disturbs nor depends on a
stack started by `make demo`. It is started when needed and left running for the next session to reuse
(several pytest sessions may share it, so none may stop it under the others); `.ci/run` and
`make test-stack-down` stop it.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import struct
import uuid
from pathlib import Path

import pytest

from cryptolake import logs
from cryptolake.lake import Lake
from cryptolake.local.process import port_open
from cryptolake.local.stack import LocalStack
from cryptolake.settings import Settings

REPO = Path(__file__).resolve().parents[1]
TEST_STATE_DIR = Path(os.environ.get("CRYPTOLAKE_TEST_STATE_DIR", REPO / ".local" / "test-stack"))
TEST_PG_PORT = int(os.environ.get("CRYPTOLAKE_TEST_PG_PORT", "25432"))
TEST_S3_PORT = int(os.environ.get("CRYPTOLAKE_TEST_S3_PORT", "19100"))
TEST_SANDBOX_PORT = int(os.environ.get("CRYPTOLAKE_TEST_SANDBOX_PORT", "18180"))
TEST_HISTORY_PORT = int(os.environ.get("CRYPTOLAKE_TEST_HISTORY_PORT", "18181"))

SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address


def other_addresses() -> set[str]:
    """This machine's non-loopback IPv4 addresses on which a listener bound to all addresses answers: where a
    server bound to loopback only must not. Read from the interfaces themselves (the host name may resolve to
    loopback alone), each address proven reachable, so a check over them can fail."""
    found = set()
    for _, interface in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                packed = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", interface.encode()[:15]))
            except OSError:  # no IPv4 address on this interface
                continue
        address = socket.inet_ntoa(packed[20:24])
        if not ipaddress.ip_address(address).is_loopback:
            found.add(address)
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        return {address for address in found if port_open(listener.getsockname()[1], address)}


@pytest.fixture(scope="session")
def stack():
    local = LocalStack(TEST_STATE_DIR, pg_port=TEST_PG_PORT, s3_port=TEST_S3_PORT, sandbox_port=TEST_SANDBOX_PORT,
                       history_port=TEST_HISTORY_PORT)
    local.up()
    return local


@pytest.fixture(scope="session")
def stack_env(stack) -> dict[str, str]:
    return stack.env()


def settings_for(lake_uri: str, env: dict[str, str]) -> Settings:
    return Settings.load(env={**env, "LAKE_URI": lake_uri})


@pytest.fixture
def file_lake(tmp_path) -> Lake:
    return Lake.from_settings(settings_for((tmp_path / "lake").as_uri(), {}))


@pytest.fixture
def s3_lake(stack_env) -> Lake:
    """A fresh prefix in the stack's bucket, so tests never see each other's objects."""
    return Lake.from_settings(settings_for(f"s3://cryptolake/tests/{uuid.uuid4().hex}", stack_env))


@pytest.fixture(params=["file", "s3"])
def lake(request) -> Lake:
    return request.getfixturevalue(f"{request.param}_lake")


@pytest.fixture(autouse=True)
def _fresh_log_context():
    """Each test starts with no run_id/job left over from another."""
    token = logs._context.set({})
    yield
    logs._context.reset(token)


@pytest.fixture(scope="session")
def spark(stack_env):
    """One local Spark session for the whole run (a JVM per test would dominate the suite's time)."""
    from cryptolake.spark_apps.session import build_spark_session

    settings = settings_for(f"s3://cryptolake/tests/spark-{uuid.uuid4().hex[:8]}", stack_env)
    session = build_spark_session("cryptolake-tests", settings, conf={"spark.ui.enabled": "false"})
    yield session
    session.stop()
