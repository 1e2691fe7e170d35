"""Servers the outage, kill and disk scenarios may take down: a PostgreSQL and an S3 server of their own (never the
shared test stack's) plus a small sandbox API, and the pipeline steps as real `cryptolake` subprocesses.

Everything that waits is bounded: a step that hangs past its timeout is killed and reported as hung.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


from cryptolake.ledger import Ledger
from cryptolake.local.objectstore import GRPC_OFFSET
from cryptolake.local.process import port_open
from cryptolake.local.stack import LocalStack
from cryptolake.settings import Settings
from tests.extract.conftest import Sandbox
from tests.reliability.check import assert_nothing_lost, counts
from tests.reliability.conftest import CYCLE_ENV, World
from tests.reliability.secret_scan import assert_no_secrets, collect_outputs
from tests.sandbox_process import launch

CLI = str(Path(sys.executable).parent / "cryptolake")
# A small market makes a cycle quick; the simulated clock is frozen and moved by the scenarios.
UNIVERSE = ("--coins", "120", "--exchanges", "12", "--categories", "20")
SANDBOX_START = "2026-03-02T10:00:00Z"
STEP_TIMEOUT = 600  # seconds any one step may take before it counts as hung


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_s3_base() -> int:
    """A base port whose five HTTP ports and their gRPC twins are all free (`weed mini` needs ten). The blocks
    (31000-39000, twins 41000-49000) and free_port's ephemeral ports (32768+) lie above every fixed test port
    (the shared stacks' CRYPTOLAKE_TEST_*_PORT, all below 30000), so a scenario never takes one of those."""
    bases = list(range(31000, 39000, 50))
    random.shuffle(bases)  # scenario modules run side by side: do not all pick the first free block
    for base in bases:
        ports = [base + i for i in range(5)]
        if all(_free(p) and _free(p + GRPC_OFFSET) for p in ports):
            return base
    raise RuntimeError("no free block of ports for an S3 server between 31000 and 39000")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class OwnStack:
    """PostgreSQL + S3 server under a private state directory on free ports, and a sandbox on a frozen clock."""
    root: Path
    local: LocalStack
    sandbox: Sandbox
    sandbox_log: Path
    api_key: str

    @classmethod
    def start(cls) -> "OwnStack":
        # PostgreSQL runs as the `postgres` user when we are root: the state directory must be traversable.
        root = Path(tempfile.mkdtemp(prefix="cryptolake-reliability-"))
        root.chmod(0o755)
        local = LocalStack(root / "stack", pg_port=free_port(), s3_port=free_s3_base(), sandbox_port=free_port())
        api_key = "rel-" + secrets.token_hex(16)  # a key of its own, so the secret scan has one to look for
        try:
            local.postgres.up()
            local.s3.up()
            process, url, log = launch("--clock", "simulated", "--start", SANDBOX_START, "--rate", "0",
                                       "--rate-limit", "100000", "--monthly-credits", "1000000", "--api-key",
                                       api_key, *UNIVERSE, log_dir=root)
        except BaseException:
            local.s3.down()
            local.postgres.down()
            raise
        return cls(root, local, Sandbox(url, process), log, api_key)

    def stop(self) -> None:
        self.sandbox.process.terminate()
        self.sandbox.process.wait(timeout=20)
        self.local.s3.down()
        self.local.postgres.down()
        shutil.rmtree(self.root, ignore_errors=True)

    def env(self, lake_uri: str, warehouse_url: str) -> dict[str, str]:
        """The environment of a step against this stack (this sandbox and its key, not the local stack's)."""
        return {**self.local.env(), **CYCLE_ENV, "LAKE_URI": lake_uri, "WAREHOUSE_URL": warehouse_url,
                "CMC_BASE_URL": self.sandbox.url, "CMC_API_KEY": self.api_key, "SPARK_LOCAL_IP": "127.0.0.1"}

    def fresh_database(self) -> str:
        """A new migrated database on this stack's PostgreSQL; its URL."""
        from sqlalchemy import create_engine, text

        from cryptolake.warehouse.migrate import upgrade

        name = f"rel_{uuid.uuid4().hex[:8]}"
        admin = create_engine(self.local.postgres.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = self.local.postgres.url(name)
        engine = create_engine(url)
        upgrade(engine)
        engine.dispose()
        return url


@dataclass
class StepRun:
    """One `cryptolake ...` subprocess; its output goes to files (a pipe left unread would stall it)."""
    args: tuple[str, ...]
    process: subprocess.Popen
    out: Path
    err: Path
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, args: tuple[str, ...], env: dict[str, str], logs_dir: Path) -> "StepRun":
        logs_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{'-'.join(a.strip('-') for a in args)}-{uuid.uuid4().hex[:6]}"
        out, err = logs_dir / f"{stem}.out", logs_dir / f"{stem}.err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            process = subprocess.Popen([CLI, "--log-json", *args], stdout=stdout, stderr=stderr,
                                       env={**os.environ, **env}, start_new_session=True)
        return cls(args, process, out, err)

    def wait(self, timeout: float = STEP_TIMEOUT) -> int:
        """Its exit status; a step still running after `timeout` is killed and fails the scenario as hung."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"`cryptolake {' '.join(self.args)}` hung for {timeout:.0f}s: "
                                 f"{self.stderr()[-2000:]}") from None

    def kill(self) -> None:
        """SIGKILL the step's whole process group (Spark's JVM is a child of the Python process)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=60)

    def running(self) -> bool:
        return self.process.poll() is None

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def log_lines(self) -> list[dict]:
        """The JSON log lines printed so far (Spark's own lines are not JSON; a line cut by a kill is skipped)."""
        found = []
        for line in self.stderr().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    pass
        return found

    def logged(self, pattern: str) -> str | None:
        """The first log message matching the regular expression `pattern`, if the step printed one yet."""
        return next((line["msg"] for line in self.log_lines() if re.search(pattern, line.get("msg", ""))), None)

    def error_lines(self) -> list[str]:
        """Its log messages at ERROR, then the one-line failure message the command printed (`error: ...`)."""
        return ([line["msg"] for line in self.log_lines() if line.get("level") == "error"]
                + [line for line in self.stderr().splitlines() if line.startswith("error:")])


@dataclass
class OwnWorld(World):
    """A's world (check.assert_nothing_lost reads it) on an OwnStack, with the steps it ran as subprocesses."""
    logs_dir: Path | None = None
    steps: list[StepRun] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def ledger(self) -> Ledger:
        return Ledger(self.lake)


def own_world(own: OwnStack, tmp_path: Path, lake_uri: str | None = None) -> OwnWorld:
    """A fresh lake (a new prefix of the stack's bucket unless given) and a fresh migrated database; the
    sandbox without faults, its usage and served journal forgotten."""
    for method, path in (("DELETE", "faults"), ("POST", "usage/reset"), ("DELETE", "served")):
        own.sandbox.control(method, path)
    env = own.env(lake_uri or f"s3://cryptolake/reliability-{uuid.uuid4().hex[:10]}", own.fresh_database())
    return OwnWorld(Settings.load(env=env), own.sandbox, env, own.api_key, sandbox_log=own.sandbox_log,
                    logs_dir=tmp_path / "steps")


def start_step(world: OwnWorld, args: tuple[str, ...]) -> StepRun:
    step = StepRun.start(args, world.env, world.logs_dir)
    world.steps.append(step)
    return step


def run_step(world: OwnWorld, args: tuple[str, ...]) -> StepRun:
    step = start_step(world, args)
    step.wait()
    return step


def finish(world: OwnWorld, **check) -> dict:
    """The scenario's end: A's independent check, C's secret scan over every step's output and the lake's text
    objects; the counts (printed for the closing note)."""
    tally = assert_nothing_lost(world, **check)
    captured = {**world.captured()}
    for step in world.steps:
        captured[f"{step.out.name}"] = step.stdout()
        captured[f"{step.err.name}"] = step.stderr()
    assert_no_secrets(collect_outputs(lake=world.lake, captured=captured), world.secrets)
    places = {p.partition(":")[0] for p in tally.checked}
    summary = {layer: sum(n for p, n in tally.checked.items() if p.startswith(layer + ":")) for layer in places}
    summary.update(counts(tally), seconds=round(time.monotonic() - world.started, 1))
    print(f"\nnothing lost: {summary}")
    return summary


@dataclass
class Phase:
    """A stretch of a step's run that a fault targets: entered once `marker()` holds (a marker the step reaches
    first: its own log line, its write in the lake, its request at the sandbox), left once the step logs a message
    matching `left` (the line it prints when the stretch ends, whether it succeeded or not)."""
    name: str
    marker: Callable[[], bool]
    left: str
    reached: bool = False

    def entered(self) -> bool:
        """Whether the marker was seen; once seen it is not asked again (the server it lives on may be down)."""
        self.reached = self.reached or bool(self.marker())
        return self.reached

    def outside(self, step: StepRun) -> str | None:
        """None while the step runs inside the phase; else where it was instead."""
        if not self.entered():
            return f"had not reached {self.name}"
        done = step.logged(self.left)
        if done is not None:
            return f"had left {self.name} ({done!r})"
        if not step.running():
            return f"had ended (exit {step.process.returncode})"
        return None


def assert_inside(step: StepRun, phase: Phase, when: str) -> None:
    where = phase.outside(step)
    assert where is None, f"{when}, `cryptolake {' '.join(step.args)}` {where}: {step.stderr()[-2000:]}"


def kill_inside(step: StepRun, phase: Phase) -> None:
    """SIGKILL the step, then prove from its exit status and its own log that the kill landed inside `phase`:
    it died of SIGKILL (not of its own accord before), after the phase's marker, before the phase's last line."""
    step.kill()
    assert step.process.returncode == -signal.SIGKILL, \
        f"`cryptolake {' '.join(step.args)}` had ended (exit {step.process.returncode}) before the kill"
    assert phase.entered(), f"killed before {phase.name}: {step.stderr()[-2000:]}"
    done = step.logged(phase.left)
    assert done is None, f"killed after {phase.name} had ended ({done!r})"


def failed_inside(step: StepRun, phase: Phase, since: int) -> bool:
    """Whether the step, after its first `since` log lines, failed inside `phase`: an error logged before the
    phase's last line, or the step ended inside the phase with its one `error:` line."""
    for line in step.log_lines()[since:]:
        if re.search(phase.left, line.get("msg", "")):
            return False
        if line.get("level") == "error":
            return True
    return not step.running() and any(line.startswith("error:") for line in step.stderr().splitlines())


def outage(step: StepRun, server, name: str, phase: Phase, seconds: float) -> int:
    """Take `server` down while the step is inside `phase` and bring it back `seconds` later; the step's exit
    status. Fails unless, by the step's own log, it was inside the phase when the server went down and was still
    inside it just before the server came back, or had failed inside it meanwhile (an error before the phase's
    last line: the outage reached it)."""
    assert_inside(step, phase, f"before {name} went down")
    since = len(step.log_lines())
    server.down()
    assert not port_open(server.port), f"{name} still answers on port {server.port} after going down"
    time.sleep(seconds)
    where = phase.outside(step)
    assert where is None or failed_inside(step, phase, since), (
        f"with {name} down, `cryptolake {' '.join(step.args)}` {where} without failing: the outage did not reach "
        f"it: {step.stderr()[-2000:]}")
    print(f"\n{name} coming back after {seconds}s; the step " + (
        f"{where}, failing: {step.error_lines()[-1][:200]}" if where else f"is still inside {phase.name}"))
    server.up()
    return step.wait()


def wait_for(condition: Callable[[], bool], what: str, step: StepRun | None = None,
             timeout: float = STEP_TIMEOUT) -> None:
    """Poll until `condition` holds; fails (killing the step) if the step ended first or the bound passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if step is not None and not step.running():
            raise AssertionError(f"`cryptolake {' '.join(step.args)}` ended (exit {step.process.returncode}) "
                                 f"before {what}: {step.stderr()[-2000:]}")
        time.sleep(0.2)
    if step is not None:
        step.kill()
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s")


