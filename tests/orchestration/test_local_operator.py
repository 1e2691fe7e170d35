"""CryptolakeCommandOperator: runs the argv, streams its output, passes the environment, fails with the exit
status, and takes the whole process group down at the execution timeout."""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowTaskTimeout

from cryptolake.orchestration.local import CryptolakeCommandOperator, resolve_executable


def fake_cryptolake(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "cryptolake"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return script


def run(operator: CryptolakeCommandOperator, capsys) -> str:
    """What the task log shows (Airflow's structured log goes to stdout outside a task runner)."""
    capsys.readouterr()
    try:
        operator.execute(context={})
    finally:
        run.output = capsys.readouterr().out
    return run.output


def test_it_streams_the_output_passes_the_environment_and_the_argv(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CRYPTOLAKE_BIN", str(fake_cryptolake(tmp_path, 'echo "args: $*"; echo "lake: $LAKE_URI" >&2')))
    monkeypatch.setenv("LAKE_URI", "s3://lake/x")
    op = CryptolakeCommandOperator(task_id="t", argv=["cryptolake", "extract", "key_info", "--group", "10x"])
    output = run(op, capsys)
    assert "args: extract key_info --group 10x" in output and "lake: s3://lake/x" in output


def test_a_non_zero_exit_fails_the_task_with_its_status(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CRYPTOLAKE_BIN", str(fake_cryptolake(tmp_path, "echo partial; exit 4")))
    op = CryptolakeCommandOperator(task_id="t", argv=["cryptolake", "extract", "crypto_map", "--group", "daily"])
    with pytest.raises(AirflowException, match="`cryptolake extract crypto_map --group daily` failed with exit "
                                                "status 4"):
        run(op, capsys)
    assert "partial" in run.output


def test_the_timeout_terminates_the_whole_process_group(tmp_path, monkeypatch, capsys):
    pid_file = tmp_path / "child.pid"
    # the command starts a child (like Spark's JVM) and waits for it
    monkeypatch.setenv("CRYPTOLAKE_BIN", str(fake_cryptolake(tmp_path, f"sleep 60 & echo $! > {pid_file}; wait")))
    op = CryptolakeCommandOperator(task_id="t", argv=["cryptolake", "transform", "--group", "daily"],
                                   execution_timeout=timedelta(seconds=1))
    started = time.monotonic()
    with pytest.raises(AirflowTaskTimeout, match="longer than 1 s"):
        run(op, capsys)
    assert time.monotonic() - started < 10
    child = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # reaped by init shortly after the kill
            os.kill(child, 0)
            time.sleep(0.1)


def test_it_runs_the_real_console_script_next_to_python(monkeypatch, capsys):
    monkeypatch.delenv("CRYPTOLAKE_BIN", raising=False)
    assert resolve_executable() == str(Path(sys.executable).parent / "cryptolake")
    op = CryptolakeCommandOperator(task_id="t", argv=["cryptolake", "extract", "--help"])
    assert "Run one extractor or a frequency group" in run(op, capsys)


def test_the_executable_is_found_on_path_or_the_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))  # nothing next to it
    (tmp_path / "bin").mkdir()
    script = fake_cryptolake(tmp_path / "bin", "exit 0")
    assert resolve_executable({"PATH": str(script.parent)}) == str(script)
    assert resolve_executable({"CRYPTOLAKE_BIN": "/opt/x/cryptolake", "PATH": str(script.parent)}) == \
        "/opt/x/cryptolake"
    with pytest.raises(AirflowException, match="set CRYPTOLAKE_BIN"):
        resolve_executable({"PATH": str(tmp_path / "empty")})


def test_only_cryptolake_commands_are_accepted():
    with pytest.raises(ValueError, match="cryptolake"):
        CryptolakeCommandOperator(task_id="t", argv=["bash", "-c", "true"])
