"""`cryptolake status` on a real PostgreSQL warehouse and a file lake: fresh, healthy, stale and failing
systems, the month's credits, and the command as operators run it (no Spark: rows and ledger records are
written directly)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cryptolake import budget, pipeline
from cryptolake.errors import CryptolakeError
from cryptolake.ledger import Ledger, RunRecord, new_run_id
from cryptolake.spark_apps.transform.tables import TABLE_LIST
from cryptolake.status import GRACE, collect, due_since, latest_scheduled, render
from cryptolake.warehouse.migrate import engine_for, upgrade
from cryptolake.warehouse.models import FactGlobalMarket
from tests.warehouse.conftest import add, fresh_database

REPO = Path(__file__).resolve().parents[2]
UTC = timezone.utc
# Wednesday 25 November 2026: the 10x group's last run of the day was 19:30.
WED_EVENING = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
LOADED = datetime(2026, 11, 25, 19, 45, tzinfo=UTC)
FRIDAY_EVENING = WED_EVENING + timedelta(days=2)
TEN_X = [t.name for t in TABLE_LIST if "10x" in t.groups]
WEEKLY = [t.name for t in TABLE_LIST if "weekly" in t.groups]
QUOTA, MARGIN = 10_000, 0.35
SPEC = pipeline.default()


@pytest.fixture(scope="module")
def database_url(stack_env):
    with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
        yield url


@pytest.fixture(scope="module")
def migrated(database_url):
    engine = engine_for(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(migrated):
    """The migrated warehouse, emptied after each test (status reads committed rows on its own connection)."""
    yield migrated
    names = ", ".join(f"dw.{t.name}" for t in TABLE_LIST)
    with migrated.begin() as connection:
        connection.execute(text(f"TRUNCATE meta.load_watermark, meta.rejected_rows, {names} CASCADE"))


def record(ledger: Ledger, step: str, name: str, started: datetime, status: str = "success", credits: int = 0,
           error: str | None = None, **details) -> RunRecord:
    run = RunRecord(run_id=new_run_id(started), step=step, name=name, started_at=started, status=status,
                    ended_at=started + timedelta(minutes=1), credits=credits, error=error, details=details)
    ledger.write(run)
    return run


def make_healthy(engine, ledger: Ledger) -> None:
    """Every table extracted, transformed and loaded after Wednesday's last 10x run."""
    sources = dict.fromkeys(s for t in TABLE_LIST for s in t.sources)
    for source in sources:
        record(ledger, "extract", source, LOADED - timedelta(minutes=14), credits=5)
    for table in TABLE_LIST:
        record(ledger, "transform", table.name, LOADED - timedelta(minutes=8), rows_quarantined=0)
        record(ledger, "load", table.name, LOADED - timedelta(minutes=2))
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO meta.load_watermark (table_name, delta_version, loaded_at, rows, run_id) "
                                "VALUES (:t, 1, :at, 10, 'test')"),
                           [{"t": t.name, "at": LOADED} for t in TABLE_LIST])
        add(connection, FactGlobalMarket, {"snapshot_timestamp": LOADED - timedelta(minutes=14),
                                           "last_updated": LOADED - timedelta(minutes=20)})


def status_at(engine, ledger: Ledger, now: datetime):
    return collect(SPEC, ledger, engine, now, QUOTA, MARGIN)


def by_table(result) -> dict:
    return {t.table: t for t in result.tables}


# -- the schedule ----------------------------------------------------------------------------------------------
def test_the_latest_scheduled_run_skips_the_weekend():
    ten_x = SPEC.groups["10x"].schedule
    monday_morning = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert latest_scheduled(ten_x, monday_morning) == datetime(2026, 11, 27, 19, 30, tzinfo=UTC)
    assert latest_scheduled(ten_x, datetime(2026, 11, 25, 12, 30, tzinfo=UTC)) == datetime(2026, 11, 25, 12, 30,
                                                                                           tzinfo=UTC)
    weekly = SPEC.groups["weekly"].schedule
    assert latest_scheduled(weekly, monday_morning) == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert latest_scheduled(weekly, monday_morning - timedelta(hours=2)) == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_a_table_is_due_for_the_run_of_its_most_recent_group_before_the_grace():
    # fact_crypto_market is refreshed by daily (08:20) and 10x: at 12:00 the 10x run of 10:30 is within the
    # grace, so the daily run of 08:20 is what it must reflect.
    market = next(t for t in TABLE_LIST if t.name == "fact_crypto_market")
    noon = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert GRACE == timedelta(hours=2)
    assert due_since(SPEC, market.groups, noon) == datetime(2026, 11, 25, 8, 20, tzinfo=UTC)
    assert due_since(SPEC, ("init", "all"), noon) is None


# -- the warehouse states --------------------------------------------------------------------------------------
def test_a_fresh_warehouse_is_not_healthy(engine, file_lake):
    result = status_at(engine, Ledger(file_lake), WED_EVENING)
    assert result.exit_code == 3 and not result.healthy
    assert {t.state for t in result.tables} == {"NEVER"}
    assert "nothing loaded yet" in result.verdict and "cryptolake demo" in result.verdict
    data = json.loads(json.dumps(result.as_dict()))
    assert set(data) == {"now", "healthy", "verdict", "grace_hours", "credits", "tables"}
    assert [t["table"] for t in data["tables"]] == [t.name for t in TABLE_LIST]
    first = data["tables"][0]
    assert set(first) == {"table", "state", "groups", "refreshed_at", "latest_snapshot", "age_hours", "due_since",
                          "runs", "rejected", "quarantined", "problems"}
    assert first["refreshed_at"] is None and first["runs"] == {"extract": [], "transform": [], "load": []}
    assert data["credits"]["used"] == 0 and data["credits"]["month"] == "2026-11"
    assert render(result)[-1] == result.verdict


def test_a_healthy_warehouse_exits_zero(engine, file_lake):
    ledger = Ledger(file_lake)
    make_healthy(engine, ledger)
    result = status_at(engine, ledger, WED_EVENING)
    assert {t.table: t.state for t in result.tables} == {t.name: "OK" for t in TABLE_LIST}
    assert result.exit_code == 0 and result.verdict.startswith("OK")
    tables = by_table(result)
    assert tables["fact_global_market"].latest_snapshot == LOADED - timedelta(minutes=14)
    assert tables["fact_global_market"].due_since == datetime(2026, 11, 25, 17, 30, tzinfo=UTC)
    assert tables["dim_crypto_info"].due_since == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert tables["fact_crypto_market"].refreshed_at == LOADED
    lines = render(result)
    row = next(line for line in lines if line.startswith("fact_global_market "))
    assert row.split()[:3] == ["fact_global_market", "OK", "15m"]


def test_two_weekdays_later_the_market_tables_are_stale(engine, file_lake):
    ledger = Ledger(file_lake)
    make_healthy(engine, ledger)
    result = status_at(engine, ledger, FRIDAY_EVENING)
    states = {t.table: t.state for t in result.tables}
    assert TEN_X and all(states[name] == "STALE" for name in TEN_X)
    assert WEEKLY and all(states[name] == "OK" for name in WEEKLY)
    assert result.exit_code == 3 and "stale" in result.verdict
    assert by_table(result)["fact_global_market"].due_since == datetime(2026, 11, 27, 17, 30, tzinfo=UTC)
    # Over the weekend nothing more is due: Monday 9:00 still expects only Friday's runs, stale until they are in.
    monday_nine = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert by_table(status_at(engine, ledger, monday_nine))["fact_global_market"].state == "STALE"
    record(ledger, "load", "fact_global_market", datetime(2026, 11, 27, 19, 40, tzinfo=UTC))
    assert by_table(status_at(engine, ledger, monday_nine))["fact_global_market"].state == "OK"


def test_a_failed_load_or_a_partial_extract_is_failing(engine, file_lake):
    ledger = Ledger(file_lake)
    make_healthy(engine, ledger)
    record(ledger, "load", "fact_global_market", LOADED + timedelta(minutes=5), status="failed",
           error="OperationalError: connection refused")
    record(ledger, "extract", "crypto_category", LOADED + timedelta(minutes=6), status="partial", credits=3,
           stopped="stopped at the run's ceiling of 40 calls")
    result = status_at(engine, ledger, WED_EVENING)
    tables = by_table(result)
    assert tables["fact_global_market"].state == "FAILING"
    assert tables["fact_global_market"].outcome("load") == "failed"
    assert any("connection refused" in p for p in tables["fact_global_market"].problems)
    assert tables["link_crypto_category"].state == "FAILING"
    assert any("partial" in p and "ceiling of 40 calls" in p for p in tables["link_crypto_category"].problems)
    assert tables["fact_market_sentiment"].state == "OK"
    assert result.exit_code == 3
    text_out = "\n".join(render(result))
    assert "fact_global_market: load fact_global_market failed" in text_out and "connection refused" in text_out
    assert result.verdict.startswith("NOT OK: 2 failing (")


def test_a_run_whose_record_came_late_is_shown_as_recorded_late(engine, file_lake):
    """A record the lake could not take when its run ended was spooled and written by a later run."""
    ledger = Ledger(file_lake)
    make_healthy(engine, ledger)
    spooled = {"at": (LOADED + timedelta(minutes=6)).isoformat(),
               "reason": "cannot read the lake s3://cryptolake: When getting information for key '_meta/load'"}
    late = record(ledger, "load", "fact_global_market", LOADED + timedelta(minutes=5), status="failed",
                  error="LakeError: cannot read the lake", spooled=spooled)
    result = status_at(engine, ledger, WED_EVENING)
    lines = render(result)
    section = lines[lines.index("recorded late:") + 1:]
    assert section[0].startswith(f"  load fact_global_market failed (run {late.run_id}): the lake could not take "
                                 "its record when it ended (cannot read the lake s3://cryptolake")
    assert not section[1] and "written later" in section[0]  # that run only
    tables = {t["table"]: t for t in json.loads(json.dumps(result.as_dict()))["tables"]}
    [load] = tables["fact_global_market"]["runs"]["load"]
    assert load["run_id"] == late.run_id and load["recorded_late"] == spooled
    assert by_table(result)["fact_crypto_market"].runs["load"][0].late is None


def test_credits_rejected_and_quarantined_count_this_month(engine, file_lake):
    ledger = Ledger(file_lake)
    make_healthy(engine, ledger)
    last_month = datetime(2026, 10, 30, 10, 30, tzinfo=UTC)
    record(ledger, "extract", "crypto_listings_latest", last_month, credits=400)
    record(ledger, "extract", "crypto_info", LOADED + timedelta(minutes=1), status="skipped", credits=0)
    record(ledger, "extract", "exchange_assets", LOADED + timedelta(minutes=2), credits=80)
    record(ledger, "transform", "fact_crypto_market", last_month, rows_quarantined=50)
    record(ledger, "transform", "fact_crypto_market", LOADED - timedelta(minutes=7), rows_quarantined=3)
    with engine.begin() as connection:
        for key, resolved in ((1, None), (2, None), (3, LOADED)):
            connection.execute(text(
                "INSERT INTO meta.rejected_rows (table_name, row_key, reason, row_data, first_seen_at, last_seen_at, "
                "attempts, resolved_at) VALUES ('fact_crypto_market', CAST(:k AS jsonb), 'unknown crypto_id', "
                "'{}', :at, :at, 1, :resolved)"), {"k": json.dumps({"crypto_id": key}), "at": LOADED,
                                                    "resolved": resolved})
    result = status_at(engine, ledger, WED_EVENING)
    sources = {s for t in TABLE_LIST for s in t.sources}
    assert result.credits.used == 5 * len(sources) + 80
    assert result.credits.planned == budget.plan(SPEC, 2026, 11, QUOTA, MARGIN).total > 0
    assert result.credits.quota == QUOTA
    tables = by_table(result)
    assert tables["fact_crypto_market"].rejected == 2 and tables["fact_crypto_daily"].rejected == 0
    assert tables["fact_crypto_market"].quarantined == 3
    credits = result.as_dict()["credits"]
    assert credits["share_of_quota"] == round(result.credits.used / QUOTA, 4)
    assert f"credits 2026-11: {result.credits.used} used" in render(result)[1]


def test_the_command_is_a_probe_and_prints_no_password(engine, database_url, tmp_path):
    """`cryptolake status --json` as an operator runs it, on the empty warehouse: exit status 3, JSON out."""
    env = {**os.environ, "LAKE_URI": (tmp_path / "lake").as_uri(), "WAREHOUSE_URL": database_url}
    done = subprocess.run([str(Path(sys.executable).parent / "cryptolake"), "status", "--json"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    data = json.loads(done.stdout)
    assert data["healthy"] is False and {t["state"] for t in data["tables"]} == {"NEVER"}
    password = make_url(database_url).password
    assert password and password not in done.stdout + done.stderr
    plain = subprocess.run([str(Path(sys.executable).parent / "cryptolake"), "status"], env=env,
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert plain.returncode == 3 and "nothing loaded yet" in plain.stdout.splitlines()[-1]
    assert password not in plain.stdout + plain.stderr


def test_an_unmigrated_warehouse_is_one_clear_error(stack_env, file_lake):
    with fresh_database(stack_env["WAREHOUSE_URL"]) as url:
        bare = engine_for(url)
        try:
            with pytest.raises(CryptolakeError, match="not migrated.*cryptolake migrate"):
                status_at(bare, Ledger(file_lake), WED_EVENING)
        finally:
            bare.dispose()
