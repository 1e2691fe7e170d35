"""The fault matrix's world: a lake prefix on the shared stack's S3, a fresh migrated warehouse database and a
sandbox API process of its own (small universe, frozen simulated clock), so faults and clock moves touch only
the scenarios of one module. Whole cycles run in-process (`run_cycles`, what `cryptolake run` does) on the
session's Spark; every log line they emit is captured for the secret scan.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy.engine import make_url

from cryptolake import logs
from cryptolake.cycle import Step, run_cycles
from cryptolake.lake import Lake
from cryptolake.settings import Settings
from cryptolake.warehouse.migrate import engine_for, upgrade
from tests.conftest import settings_for
from tests.extract.conftest import Sandbox
from tests.sandbox_process import launch
from tests.warehouse.conftest import fresh_database

CLI = str(Path(sys.executable).parent / "cryptolake")
# Small enough for a cycle in seconds, big enough for several pages and batches. Categories: the minimum allowed.
UNIVERSE = ("--coins", "300", "--exchanges", "20", "--categories", "20")
# The simulated clock stands at second 59 of a minute: a 429's Retry-After (the rest of the minute) is 1 s.
SANDBOX_START = "2026-11-02T08:00:59Z"  # a Monday
CYCLE_ENV = {"CMC_RATE_LIMIT": "100000", "CMC_LISTINGS_LIMIT": "250", "CMC_CATEGORY_SLICE": "4"}


@dataclass
class World:
    """What a scenario drives and what the independent check reads (check.assert_nothing_lost)."""

    settings: Settings
    sandbox: Sandbox
    env: dict[str, str]           # the environment a `cryptolake` subprocess needs for this lake and warehouse
    api_key: str
    spark: object = None
    sandbox_log: Path | None = None
    outputs: dict[str, str] = field(default_factory=dict)  # captured stdout/stderr/log lines, by name
    _log: io.StringIO = field(default_factory=io.StringIO)

    @property
    def lake(self) -> Lake:
        return Lake.from_settings(self.settings)

    @property
    def secrets(self) -> list[str]:
        """The stack's secrets no output may show: API key, S3 secret key, warehouse password."""
        password = make_url(self.settings.warehouse_url).password
        return [s for s in (self.api_key, self.env.get("AWS_SECRET_ACCESS_KEY"), password) if s]

    def cycle(self, group: str, settings: Settings | None = None) -> list[Step]:
        """One group's whole cycle (extract, transform, load, post-load SQL), as `cryptolake run --group`."""
        return list(run_cycles(settings or self.settings, [group], spark=self.spark))

    def cli(self, name: str, *args: str, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
        """`cryptolake <args>` in a subprocess on this world; its stdout and stderr are kept for the scan."""
        done = subprocess.run([CLI, *args], env={**os.environ, **self.env, **env}, capture_output=True, text=True,
                              timeout=timeout)
        self.outputs[f"{name}.stdout"], self.outputs[f"{name}.stderr"] = done.stdout, done.stderr
        return done

    def captured(self) -> dict[str, str]:
        """Every output so far: subprocess streams, the in-process log lines and the sandbox's log."""
        found = {**self.outputs, "logs": self._log.getvalue()}
        if self.sandbox_log and self.sandbox_log.exists():
            found["sandbox.log"] = self.sandbox_log.read_text(errors="replace")
        return found

    def fault(self, **spec) -> None:
        self.sandbox.control("POST", "faults", spec)


def start_world(stack_env: dict[str, str], database_url: str, spark, tmp_dir: Path, *flags: str) -> World:
    """A sandbox of its own (a random API key, so the scan can look for it) on a fresh lake prefix."""
    api_key = f"rl-{secrets.token_hex(16)}"
    process, url, log = launch("--seed", "11", *UNIVERSE, "--clock", "simulated", "--start", SANDBOX_START,
                               "--rate", "0", "--retry-after", "--rate-limit", "100000", "--api-key", api_key,
                               *flags, log_dir=tmp_dir)
    env = {**stack_env, **CYCLE_ENV, "CMC_BASE_URL": url, "CMC_API_KEY": api_key, "WAREHOUSE_URL": database_url,
           "LAKE_URI": f"s3://cryptolake/tests/reliability-{uuid.uuid4().hex[:10]}"}
    logs.register_secret(api_key)
    return World(settings_for(env["LAKE_URI"], env), Sandbox(url, process), env, api_key, spark, log)


@pytest.fixture(scope="session")
def warehouse_url(stack_env) -> Iterator[str]:
    """A fresh database at head for the matrix, dropped after it."""
    with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
        engine = engine_for(url)
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def world(stack_env, warehouse_url, spark, tmp_path_factory) -> Iterator[World]:
    """One world for the fast half of the matrix: an init cycle costs minutes, so scenarios share its lake and
    warehouse and each adds cycles; every check covers all the scenarios before it did too. In-process log
    lines are captured the whole time."""
    made = start_world(stack_env, warehouse_url, spark, tmp_path_factory.mktemp("reliability"))
    handler = logging.StreamHandler(made._log)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs._ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    try:
        steps = made.cycle("init")
        assert all(s.exit_code == 0 for s in steps), f"the init cycle failed: {steps}"
        made.sandbox.control("POST", "clock", {"advance_seconds": 3600})
        yield made
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        made.sandbox.process.terminate()
        made.sandbox.process.wait(10)


@pytest.fixture
def fresh(world) -> Iterator[World]:
    """The world with no fault left and the sandbox's usage forgotten; the clock an hour on afterwards."""
    world.sandbox.control("DELETE", "faults")
    world.sandbox.control("POST", "usage/reset")
    yield world
    world.sandbox.control("DELETE", "faults")
    world.sandbox.control("POST", "clock", {"advance_seconds": 3600})
