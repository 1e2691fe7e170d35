"""The local DAG backend: each task runs its `cryptolake` command as a subprocess of the Airflow worker.

The argv is the one the KubernetesPodOperator or SparkApplication would run (commands.py); the worker's
environment is passed through as is (LAKE_URI, WAREHOUSE_URL, CMC_*, ... come from wherever the worker has
them), so `dag.test()` and a laptop's Airflow exercise the same commands without a cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowTaskTimeout

from cryptolake.local.process import signal_group
from cryptolake.orchestration.alerts import check_status, read_report
from cryptolake.orchestration.commands import EXECUTABLE

BIN_ENV = "CRYPTOLAKE_BIN"  # the cryptolake executable to run, when it is not next to Python or on PATH
KILL_GRACE_SECONDS = 10  # SIGTERM, then SIGKILL after this long


def resolve_executable(environ: Mapping[str, str] | None = None) -> str:
    """CRYPTOLAKE_BIN if set, else the console script next to this Python (a venv's bin/), else PATH."""
    environ = os.environ if environ is None else environ
    if environ.get(BIN_ENV):
        return environ[BIN_ENV]
    beside = Path(sys.executable).parent / EXECUTABLE  # not resolved: a venv's python is a symlink
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(EXECUTABLE, path=environ.get("PATH"))
    if found:
        return found
    raise AirflowException(f"cannot find the {EXECUTABLE} executable (not in {BIN_ENV}, not next to "
                           f"{sys.executable}, not on PATH): install cryptolakehouse into the worker's "
                           f"environment or set {BIN_ENV}")


class CryptolakeCommandOperator(BaseOperator):
    """Runs one `cryptolake ...` argv, streams its output into the task log, fails on a non-zero exit.

    The execution timeout is enforced here as well as by Airflow: the command runs in a process group of its
    own, and the whole group (Spark's JVM included) is terminated when the time is up or the task is killed.
    """

    template_fields: Sequence[str] = ()  # the command is fixed by the spec, never templated
    ui_color = "#d9ecf2"

    def __init__(self, *, argv: Sequence[str], **kwargs: Any):
        super().__init__(**kwargs)
        if not argv or argv[0] != EXECUTABLE:
            raise ValueError(f"expected a `{EXECUTABLE} ...` command, got {list(argv)!r}")
        self.argv = list(argv)
        self._process: subprocess.Popen | None = None

    def execute(self, context: Any) -> None:
        self.finish(self.run_command(), context)

    def finish(self, status: int, context: Any) -> None:
        if status != 0:
            raise AirflowException(f"`{' '.join(self.argv)}` failed with exit status {status}")

    def output(self, line: str) -> None:
        self.log.info("%s", line)

    def run_command(self) -> int:
        """Runs the command, each line of its output through output(); its exit status."""
        command = [resolve_executable(), *self.argv[1:]]
        timeout = self.execution_timeout.total_seconds() if self.execution_timeout else None
        self.log.info("running: %s", " ".join(self.argv))
        self._process = process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=dict(os.environ), start_new_session=True, text=True, errors="replace", bufsize=1)
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            self._stop(process)

        timer = threading.Timer(timeout, expire) if timeout else None
        try:
            if timer:
                timer.daemon = True
                timer.start()
            assert process.stdout is not None
            for line in process.stdout:
                self.output(line.rstrip("\n"))
            status = process.wait()
        finally:
            if timer:
                timer.cancel()
            if process.poll() is None:  # interrupted (Airflow's own timeout, a kill): take the group down too
                self._stop(process)
            if process.stdout:
                process.stdout.close()
        if timed_out.is_set():
            raise AirflowTaskTimeout(f"`{' '.join(self.argv)}` ran longer than {timeout:.0f} s "
                                     "(execution_timeout); its process group was terminated")
        return status

    def on_kill(self) -> None:
        if self._process is not None:
            self._stop(self._process)

    def _stop(self, process: subprocess.Popen) -> None:
        """SIGTERM to the command's process group, SIGKILL if it is still there after the grace period."""
        signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        signal_group(process.pid, signal.SIGKILL)  # the leader may be gone while its children linger


class CryptolakeStatusOperator(CryptolakeCommandOperator):
    """`cryptolake status --json`: when the warehouse is unhealthy, the task fails for good with the tables that
    are not OK kept for the run's alert (alerts.check_status)."""

    def execute(self, context: Any) -> None:
        self._lines: list[str] = []
        super().execute(context)

    def output(self, line: str) -> None:
        self._lines.append(line)
        super().output(line)

    def finish(self, status: int, context: Any) -> None:
        if status != 0:
            check_status(read_report(self._lines), context)
        super().finish(status, context)
