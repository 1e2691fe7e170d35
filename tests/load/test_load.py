"""Silver -> warehouse on the real PostgreSQL of the test stack, checked with delta-rs and SQL (not the loader).

One module fixture builds silver once (init over two sandbox days) and runs the loads in the order an operator
might: fact_crypto_market alone first (its dimension is not loaded yet: every row is rejected), then the whole
group (the dimension arrives, the rejected rows are loaded), then the group again (nothing may change).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from types import SimpleNamespace

import pandas as pd
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from sqlalchemy import text

from cryptolake.lake import Lake
from cryptolake.ledger import Ledger, RunRecord
from cryptolake.spark_apps.load.loader import load_group
from cryptolake.spark_apps.transform.runner import run_group
from cryptolake.warehouse.migrate import engine_for, upgrade
from cryptolake.warehouse.models import DW_TABLES
from tests.conftest import REPO, settings_for
from tests.transform import expected as E
from tests.transform.bronze import write_snapshot
from tests.transform.conftest import DAYS, copy_bronze
from tests.warehouse.conftest import fresh_database

pytestmark = pytest.mark.spark
LAST_DAY = DAYS[1]
MARKET_KPIS = ["price_usd", "market_cap_usd", "volume_24h_usd", "cmc_rank", "volume_to_market_cap_ratio",
               "missing_supply_ratio", "supply_utilization", "fully_diluted_cap_ratio", "run_id", "source_file"]
DAILY_KPIS = ["open_usd", "high_usd", "low_usd", "close_usd", "n_snapshots", "log_return", "volatility_7d",
              "volatility_30d", "corr_btc_30d", "running_max_close_usd", "drawdown", "snapshot_timestamp",
              "run_id", "source_file"]


def state(engine) -> dict[str, tuple[int, str]]:
    """Per dw table: row count and an order-independent checksum of every column."""
    with engine.connect() as conn:
        return {name: tuple(conn.execute(text(
            f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM dw.{name} t")).one())
            for name in DW_TABLES}


def watermarks(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT table_name, delta_version FROM meta.load_watermark")).all())


def rejected(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql("SELECT table_name, reason, attempts, resolved_at FROM meta.rejected_rows", conn)


@pytest.fixture(scope="module")
def loads(sandbox_bronze, spark, stack_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("load") / "lake"
    copy_bronze(sandbox_bronze, root, LAST_DAY)
    settings = settings_for(root.as_uri(), {})
    lake = Lake.from_settings(settings)
    assert run_group(spark, settings, "init", lake).exit_code == 0
    with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
        engine = engine_for(url)
        upgrade(engine)
        settings = settings_for(root.as_uri(), {"WAREHOUSE_URL": url})
        out = SimpleNamespace(lake=lake, root=root, settings=settings, engine=engine, url=url)
        out.fact_first = load_group(spark, settings, "init", tables=["fact_crypto_market"], lake=lake)
        out.rejected_first = rejected(engine)
        out.market_first = state(engine)["fact_crypto_market"]
        out.full = load_group(spark, settings, "init", lake=lake)
        out.after_full = state(engine)
        out.marks_full = watermarks(engine)
        out.again = load_group(spark, settings, "init", lake=lake)
        out.after_again = state(engine)
        yield out
        engine.dispose()


def dw(loads, table: str) -> pd.DataFrame:
    with loads.engine.connect() as conn:
        return pd.read_sql(f"SELECT * FROM dw.{table}", conn)


def test_a_fact_before_its_dimension_is_rejected_with_the_reason_then_loaded_when_it_arrives(loads):
    silver_rows = len(E.silver(loads.lake, "fact_crypto_market"))
    assert loads.fact_first.exit_code == 0 and loads.market_first[0] == 0
    first = loads.rejected_first
    assert len(first) == silver_rows
    assert set(first.reason) == {"unknown crypto_id (not in dw.dim_crypto_id)"}
    assert first.resolved_at.isna().all()
    now = rejected(loads.engine).query("table_name == 'fact_crypto_market'")
    assert len(now) == silver_rows and now.resolved_at.notna().all()  # kept, marked resolved, never dropped
    assert loads.after_full["fact_crypto_market"][0] == silver_rows


def loadable(lake: Lake, name: str) -> pd.DataFrame:
    """The silver rows whose foreign keys exist in the silver tables they reference."""
    rows = E.silver(lake, name)
    for fk in DW_TABLES[name].__table__.foreign_keys:
        rows = rows[rows[fk.parent.name].isin(E.silver(lake, fk.column.table.name)[fk.column.name])]
    return rows


def test_a_full_load_loads_every_table_with_the_counts_of_silver(loads):
    """Every silver row is in dw, or pending in meta.rejected_rows because its dimension is not in silver
    (the sandbox's exchanges hold coins beyond the coin map it serves)."""
    assert loads.full.exit_code == 0 and not loads.full.failed
    assert {t.table for t in loads.full.tables} == set(DW_TABLES)
    pending = rejected(loads.engine).query("resolved_at.isna()").groupby("table_name").size().to_dict()
    assert set(pending) == {"fact_exchange_assets"}
    for name in DW_TABLES:
        silver, expected = len(E.silver(loads.lake, name)), len(loadable(loads.lake, name))
        assert loads.after_full[name][0] == expected > 0, name
        assert pending.get(name, 0) == silver - expected, name
    with loads.engine.connect() as conn:
        staging = conn.execute(text("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'load_stage_%'")).scalar()
    assert set(loads.marks_full) == set(DW_TABLES) and staging == 0


def test_warehouse_kpis_equal_silver(loads):
    E.assert_close(dw(loads, "fact_crypto_market"), E.silver(loads.lake, "fact_crypto_market"),
                   ["crypto_id", "snapshot_timestamp"], MARKET_KPIS, rel=1e-9)
    E.assert_close(dw(loads, "fact_crypto_daily"), E.silver(loads.lake, "fact_crypto_daily"),
                   ["crypto_id", "snapshot_date"], DAILY_KPIS, rel=1e-9)


def test_loading_twice_changes_nothing(loads):
    assert loads.again.exit_code == 0
    assert loads.after_again == loads.after_full
    assert {t.status for t in loads.again.tables} == {"skipped"}


def test_the_password_reaches_neither_spark_conf_nor_the_ledger(loads, spark):
    password = loads.engine.url.password
    assert password and len(password) >= 4
    assert not any(password in str(v) for _, v in spark.sparkContext.getConf().getAll())
    runs = Ledger(loads.lake).runs("load", "fact_crypto_market")
    assert runs
    for record in runs:
        assert password not in record.to_json().decode() and record.upstream["to_version"] >= 0


def load_table(loads, table: str, wait_seconds: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cryptolake", "--log-json", "load", "--group", "10x", "--table", table],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "LAKE_URI": loads.root.as_uri(), "WAREHOUSE_URL": loads.url,
             "LOAD_LOCK_WAIT_SECONDS": str(wait_seconds)})


def test_a_second_load_of_the_same_table_refuses_after_its_wait_with_one_clear_line(loads):
    with loads.engine.connect() as holder:  # as if another load of the table were running
        holder.execute(text("SELECT pg_advisory_lock(hashtext('cryptolake-load:fact_global_market'))"))
        try:
            out, err = load_table(loads, "fact_global_market", wait_seconds=2).communicate(timeout=600)
        finally:  # a session lock outlives the block in the pool: give it back, as the ended load would
            holder.execute(text("SELECT pg_advisory_unlock(hashtext('cryptolake-load:fact_global_market'))"))
    assert "load of fact_global_market refused: another load of this table is running (PostgreSQL advisory lock) " \
           "and did not end within 2 s" in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("error: load 10x: fact_global_market failed")
    assert loads.engine.url.password not in err + out
    assert Ledger(loads.lake).latest("load", "fact_global_market", ("failed",)) is not None


def test_a_second_load_of_the_same_table_waits_for_the_first_and_then_loads(loads):
    waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    with loads.engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(hashtext('cryptolake-load:fact_market_sentiment'))"))
        try:
            load = load_table(loads, "fact_market_sentiment", wait_seconds=600)
            for _ in range(600):  # bounded: until the load is seen waiting on the lock (or has ended)
                if holder.execute(waiting).scalar() or load.poll() is not None:
                    break
                time.sleep(0.5)
            seen_waiting = bool(holder.execute(waiting).scalar())
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(hashtext('cryptolake-load:fact_market_sentiment'))"))
    out, err = load.communicate(timeout=600)
    assert seen_waiting, err[-3000:]
    assert load.returncode == 0, err[-3000:]
    assert Ledger(loads.lake).latest("load", "fact_market_sentiment", ("success", "skipped")) is not None


@pytest.fixture(scope="module")
def intraday(loads, spark):
    """A later snapshot of the last day (prices x 1.5) transformed into silver and loaded; the day's rows of
    fact_crypto_daily as they were before."""
    newest = sorted((loads.root / "bronze" / "crypto_listings_latest").glob(f"snapshot_date={LAST_DAY}/*"))[-1]
    rows = [{**r, "price_usd": r["price_usd"] * 1.5} for r in pq.read_table(newest).to_pylist()]
    write_snapshot(loads.lake, "crypto_listings_latest",
                   datetime(LAST_DAY.year, LAST_DAY.month, LAST_DAY.day, 20, tzinfo=timezone.utc), rows)
    before = dw(loads, "fact_crypto_daily")
    assert run_group(spark, loads.settings, "10x", loads.lake).exit_code == 0
    assert load_group(spark, loads.settings, "10x", lake=loads.lake).exit_code == 0
    return before[before.snapshot_date == LAST_DAY]


def test_an_intraday_update_of_fact_crypto_daily_reaches_the_warehouse(loads, intraday):
    """The later snapshot changes the day's close and high: DO UPDATE, not DO NOTHING."""
    after = dw(loads, "fact_crypto_daily")
    E.assert_close(after, E.silver(loads.lake, "fact_crypto_daily"), ["crypto_id", "snapshot_date"], DAILY_KPIS,
                   rel=1e-9)
    today = after[after.snapshot_date == LAST_DAY]
    assert len(today) == len(intraday) > 0 and (today.n_snapshots >= 2).all()
    changed = today.merge(intraday, on=["crypto_id", "snapshot_date"], suffixes=("", "_before"))
    assert len(changed) == len(today)
    # 1.5 times the day's last price is every coin's new high
    assert ((changed.high_usd - changed.close_usd).abs() < 1e-9 * changed.close_usd).all()
    assert (changed.close_usd != changed.close_usd_before).all()


def silver_at(loads, table: str, version: int | None = None) -> pd.DataFrame:
    return DeltaTable(loads.lake.uri_of(f"silver/{table}"), version=version).to_pandas()


def test_as_of_version_restores_an_older_version_until_the_next_load(loads, intraday, spark):
    keys = {"fact_crypto_market": ["crypto_id", "snapshot_timestamp"], "fact_crypto_daily": ["crypto_id",
                                                                                            "snapshot_date"]}
    kpis = {"fact_crypto_market": MARKET_KPIS, "fact_crypto_daily": DAILY_KPIS}
    for name, old in ((n, loads.marks_full[n]) for n in keys):
        assert old < watermarks(loads.engine)[name]  # the intraday snapshot made a later version
        result = load_group(spark, loads.settings, "10x", tables=[name], as_of_version=old, lake=loads.lake)
        assert result.exit_code == 0 and watermarks(loads.engine)[name] == old
        E.assert_close(dw(loads, name), silver_at(loads, name, old), keys[name], kpis[name], rel=1e-9)
    assert state(loads.engine)["fact_crypto_market"] == loads.after_full["fact_crypto_market"]
    assert load_group(spark, loads.settings, "10x", lake=loads.lake).exit_code == 0  # later versions come back
    for name in keys:
        E.assert_close(dw(loads, name), silver_at(loads, name), keys[name], kpis[name], rel=1e-9)


def test_as_of_version_of_a_referenced_dimension_refuses_and_changes_nothing(loads, spark):
    before = state(loads.engine)
    result = load_group(spark, loads.settings, "init", tables=["dim_crypto_id"], as_of_version=0, lake=loads.lake)
    assert result.failed == ["dim_crypto_id"]
    error = Ledger(loads.lake).latest("load", "dim_crypto_id", ("failed",)).error
    assert "dim_crypto_id cannot be rolled back to version 0" in error and "violates foreign key" in error
    assert state(loads.engine) == before


def test_a_load_killed_mid_way_leaves_no_partial_table_and_the_next_run_completes(loads, stack_env, spark,
                                                                                      tmp_path):
    """SIGKILL (the CLI and its Spark JVM) while a table's rows sit in staging: every dw table is then either
    untouched or complete, and a second run loads everything (a copy of the lake and a database of its own)."""
    root = tmp_path / "lake"
    shutil.copytree(loads.root, root)
    lake = Lake.from_settings(settings_for(root.as_uri(), {}))
    command = [sys.executable, "-m", "cryptolake", "--log-json", "load", "--group", "init"]
    with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
        engine = engine_for(url)
        upgrade(engine)
        env = {**os.environ, "PYTHONPATH": str(REPO), "LAKE_URI": root.as_uri(), "WAREHOUSE_URL": url}
        process = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            staged = None
            while staged is None and process.poll() is None:
                with engine.connect() as conn:
                    if conn.execute(text("SELECT count(*) FROM meta.load_watermark")).scalar() >= 3:
                        staged = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'meta' "
                                                   "AND tablename LIKE 'load_stage_%'")).scalar()
            assert staged is not None, "the load ended before it could be killed"
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        killed = state(engine)
        marks = watermarks(engine)
        assert 3 <= len(marks) < len(DW_TABLES) and staged.removeprefix("load_stage_") not in marks
        for name in DW_TABLES:
            assert killed[name][0] == (len(loadable(lake, name)) if name in marks else 0), name
        settings = settings_for(root.as_uri(), {"WAREHOUSE_URL": url})
        assert load_group(spark, settings, "init", lake=lake).exit_code == 0
        again = state(engine)
        for name in DW_TABLES:
            assert again[name][0] == len(loadable(lake, name)), name
        engine.dispose()


def test_the_run_ledger_is_mirrored_into_meta_runs(loads):
    """Each load ends by mirroring the ledger: every extract, transform and load record is in meta.runs."""
    records = [RunRecord.from_json(loads.lake.read_bytes(p)) for p in loads.lake.list_files("_meta", ".json")
               if p.split("/")[1] in ("extract", "transform", "load")]
    with loads.engine.connect() as conn:
        mirrored = set(conn.execute(text("SELECT run_id, step, name, status, rows, files FROM meta.runs")).all())
    assert {"extract", "transform", "load"} <= {r.step for r in records}
    assert {(r.run_id, r.step, r.name, r.status, r.rows, len(r.files)) for r in records} == mirrored


def test_a_corrected_info_attribute_adds_a_version_and_keeps_the_old_one(loads, spark):
    """A rescan that corrects a coin's description: dim_crypto_info gains a version, the old one stays."""
    newest = sorted((loads.root / "bronze" / "crypto_info").rglob("*.parquet"))[-1]
    coin = pq.read_table(newest).to_pylist()[0]
    corrected = {**coin, "description": f"{coin['description']} (corrected)"}
    rescan = datetime(LAST_DAY.year, LAST_DAY.month, LAST_DAY.day, 21, tzinfo=timezone.utc)
    write_snapshot(loads.lake, "crypto_info", rescan, [corrected])
    assert run_group(spark, loads.settings, "weekly", loads.lake, tables=["dim_crypto_info"],
                     maintenance=False).exit_code == 0
    assert load_group(spark, loads.settings, "weekly", tables=["dim_crypto_info"], lake=loads.lake).exit_code == 0
    with loads.engine.connect() as conn:
        versions = conn.execute(text(
            "SELECT snapshot_timestamp, description FROM dw.dim_crypto_info WHERE crypto_id = :id "
            "ORDER BY snapshot_timestamp"), {"id": coin["crypto_id"]}).all()
    assert len(versions) >= 2
    assert versions[-1] == (rescan, corrected["description"])
    assert coin["description"] in [d for _, d in versions[:-1]]  # the version before the correction is kept
