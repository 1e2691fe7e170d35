"""`cryptolake transform`: help, usage errors, and the exit status of a run with a failing table."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from cryptolake.lake import bronze_path
from cryptolake.ledger import Ledger, RunRecord, new_run_id
from tests.conftest import REPO
from tests.terminal import run_on_terminal
from tests.transform.bronze import Market


def cli(*args: str, env: dict | None = None, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryptolake", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, timeout=600)


def test_help_names_the_groups_and_the_exit_status():
    done = cli("transform", "--help")
    assert done.returncode == 0
    for word in ("--group", "daily", "weekly", "5x", "10x", "init", "all", "--table", "Exit status"):
        assert word in done.stdout


def test_usage_errors_exit_2_without_starting_spark():
    assert cli("transform").returncode == 2  # --group is required
    wrong = cli("transform", "--group", "5x", "--table", "dim_crypto_id")
    assert wrong.returncode == 2 and "not in group 5x" in wrong.stderr


@pytest.mark.spark
def test_a_failing_table_makes_the_run_exit_1_with_one_clear_line(file_lake, tmp_path):
    ts = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)
    Market().write_day(file_lake, ts.date(), times=[ts.time()], extractors=["global_metrics_latest"])
    path = bronze_path("crypto_categories", ts)
    file_lake.write_bytes(path, b"not parquet")
    Ledger(file_lake).write(RunRecord(new_run_id(ts), "extract", "crypto_categories", ts, status="success",
                                      ended_at=ts, rows=1, files=[path]))
    done = cli("--log-json", "transform", "--group", "init", env={"LAKE_URI": file_lake.uri}, cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: transform init: dim_crypto_category, fact_crypto_category failed")
    assert Ledger(file_lake).latest("transform", "fact_global_market").status == "success"


@pytest.mark.spark
def test_a_terminal_shows_progress_over_the_tables(file_lake, tmp_path):
    ts = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)
    Market().write_day(file_lake, ts.date(), times=[ts.time()], extractors=["global_metrics_latest"])
    status, shown = run_on_terminal([sys.executable, "-m", "cryptolake", "transform", "--group", "10x"],
                                    env={**os.environ, "PYTHONPATH": str(REPO), "LAKE_URI": file_lake.uri},
                                    cwd=tmp_path)
    assert status == 0, shown[-3000:]
    from cryptolake.spark_apps.transform.features import features_of
    from cryptolake.spark_apps.transform.tables import tables_of

    steps = len(tables_of("10x")) + len(features_of("10x"))  # the 10x group's silver tables, then its gold ones
    assert "transform 10x:   0%|" in shown and f"| {steps - 1}/{steps} [" in shown, shown[-3000:]
    assert "table/s, fact_global_market]" in shown  # the table being built
    assert "INFO    transform:fact_global_market[" in shown  # log lines stay readable text next to the bar


def test_the_spark_application_entry_is_the_same_click_command():
    """spark-submit runs main.py as a file: same help, same usage errors, no second parser."""
    entry = [sys.executable, str(REPO / "spark_apps" / "transform" / "main.py")]
    for args in (["--help"], ["--group", "hourly"]):
        direct = subprocess.run([*entry, *args], capture_output=True, text=True, timeout=120)
        assert (direct.returncode, direct.stdout, direct.stderr) == (
            (done := cli("transform", *args)).returncode, done.stdout, done.stderr)
    assert direct.returncode == 2 and "'hourly' is not one of" in direct.stderr
