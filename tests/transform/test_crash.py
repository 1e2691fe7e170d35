"""A transform killed halfway (SIGKILL to `cryptolake transform` and its Spark JVM) is recovered by the next
run: no duplicates, nothing missing, the same tables as the independent computation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from cryptolake.spark_apps.transform.runner import run_group
from tests.conftest import REPO, settings_for
from tests.transform.conftest import DAYS, copy_bronze
from tests.transform.test_pipeline import capture, check_against_bronze

pytestmark = pytest.mark.spark
# init builds the exchange tables first: once fact_exchange_assets (4th of 14) has committed, the run is
# well under way and the crypto, category, global and sentiment tables are not built yet
HALFWAY = "silver/fact_exchange_assets/_delta_log/00000000000000000001.json"


def test_a_run_killed_halfway_is_recovered_by_the_next_one(sandbox_bronze, spark, tmp_path):
    root = tmp_path / "lake"
    copy_bronze(sandbox_bronze, root, DAYS[-2])
    settings = settings_for(root.as_uri(), {})
    lake = Lake.from_settings(settings)
    env = {**os.environ, "LAKE_URI": root.as_uri(), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "cryptolake", "--log-json", "transform", "--group", "init"],
                               env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)  # its own process group: the JVM dies with it
    try:
        deadline = time.monotonic() + 300
        while not (root / HALFWAY).exists():
            assert process.poll() is None, f"transform ended before the kill: {process.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "transform did not get halfway in 300s"
            time.sleep(0.05)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(30)
    assert process.returncode == -signal.SIGKILL

    ledger = Ledger(lake)
    assert ledger.runs("transform", "group-init") == []  # the group never finished
    assert not lake.exists("silver/fact_crypto_market")
    done = [name for name in ("dim_exchange_id", "dim_exchange_map", "dim_exchange_info", "fact_exchange_assets")
            if ledger.runs("transform", name)]
    assert len(done) >= 3  # the last one may have committed without its ledger record

    outcome = run_group(spark, settings, "init", lake)
    assert outcome.exit_code == 0
    statuses = {r.table: r.status for r in outcome.results}
    assert all(statuses[name] == "up-to-date" for name in done)
    check_against_bronze(capture(lake)["tables"], lake)  # includes: every key unique in every table
