"""The qa views on small hand-made data: a stale table is flagged, counts and NULL rates per snapshot, dangling
coin ids, impossible values, load latency and rejected rows are what an operator would read off them."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from cryptolake import pipeline
from cryptolake.spark_apps.transform.tables import TABLE_LIST
from cryptolake.warehouse.models import (DimCryptoId, FactCryptoDaily, FactCryptoMarket, FactGlobalMarket,
                                         FactMarketSentiment, LoadWatermark, RejectedRow)
from tests.warehouse.conftest import add, rows

T1 = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)
T2 = T1 + timedelta(hours=2)


@pytest.fixture
def coins(conn):
    add(conn, DimCryptoId, {"crypto_id": 1, "name": "Bitcoin", "symbol": "BTC", "snapshot_timestamp": T1},
        {"crypto_id": 1027, "name": "Ethereum", "symbol": "ETH", "snapshot_timestamp": T1},
        {"crypto_id": 5, "name": "Token", "symbol": "TOK", "snapshot_timestamp": T1, "platform_id": 999})
    return conn


def quote(crypto_id: int, at: datetime, price: float = 1.0, **measures) -> dict:
    return {"crypto_id": crypto_id, "snapshot_timestamp": at, "price_usd": price, **measures}


def test_freshness_flags_a_table_older_than_its_schedule_allows_and_empty_tables(coins):
    now = coins.execute(text("SELECT now()")).scalar()
    add(coins, FactGlobalMarket, {"snapshot_timestamp": now - timedelta(minutes=10), "last_updated": now})
    add(coins, FactCryptoMarket, quote(1, now - timedelta(days=30)))
    fresh = {r["table_name"]: r for r in rows(coins, "SELECT * FROM qa.table_freshness")}
    assert fresh["fact_global_market"]["is_stale"] is False
    assert fresh["fact_global_market"]["age_hours"] == pytest.approx(1 / 6)
    assert fresh["fact_crypto_market"]["is_stale"] is True and fresh["fact_crypto_market"]["age_hours"] >= 720
    never_loaded = fresh["fact_crypto_category"]
    assert never_loaded["is_stale"] is True and never_loaded["latest_snapshot"] is None


def test_freshness_follows_the_most_frequent_group_of_the_pipeline_spec(conn):
    """Each table by the most frequent group refreshing it, allowed that group's longest gap between two runs
    (weekday groups: between two weekday runs) plus an hour: derived from the spec, so schedules cannot drift."""
    spec = pipeline.default()
    expected = {}
    for table in TABLE_LIST:
        scheduled = [g for g in table.groups if g in spec.groups and spec.groups[g].schedule]
        group = max(scheduled, key=lambda g: spec.groups[g].schedule.runs_per_week)
        schedule = spec.groups[group].schedule
        minutes = sorted(pipeline.DAY_NAMES.index(d) * 1440 + t.hour * 60 + t.minute
                         for d in schedule.days for t in schedule.at)
        gaps = [b - a for a, b in zip(minutes, minutes[1:] + [minutes[0] + 7 * 1440])]
        weekdays_only = len(schedule.days) == 5  # the weekend gap is allowed on top, day by day
        longest = sorted(gaps)[-2] if weekdays_only else max(gaps)
        expected[table.name] = (group, longest / 60 + 1)
    found = {r["table_name"]: (r["frequency_group"], r["max_age_hours"])  # empty tables: no weekend allowance
             for r in rows(conn, "SELECT table_name, frequency_group, max_age_hours FROM qa.table_freshness")}
    assert found == expected


def test_row_counts_per_snapshot_show_the_change_from_the_previous_one(coins):
    add(coins, FactCryptoMarket, quote(1, T1), quote(1027, T1), quote(5, T1), quote(1, T2), quote(1027, T2))
    counts = rows(coins, "SELECT * FROM qa.snapshot_row_counts WHERE table_name = 'fact_crypto_market' "
                         "ORDER BY snapshot_timestamp")
    assert [(c["row_count"], c["previous_row_count"]) for c in counts] == [(3, None), (2, 3)]
    assert counts[0]["change_ratio"] is None and counts[1]["change_ratio"] == pytest.approx(-1 / 3)


def test_null_rates_of_key_measures_per_snapshot(coins):
    add(coins, FactCryptoMarket, quote(1, T1, market_cap_usd=1.0), quote(1027, T1, market_cap_usd=1.0),
        quote(5, T1, market_cap_usd=None))
    rate = rows(coins, "SELECT * FROM qa.null_rates WHERE table_name = 'fact_crypto_market'")
    by_column = {r["column_name"]: r for r in rate}
    assert (by_column["market_cap_usd"]["row_count"], by_column["market_cap_usd"]["null_count"]) == (3, 1)
    assert by_column["market_cap_usd"]["null_rate"] == pytest.approx(1 / 3)
    assert by_column["volume_24h_usd"]["null_rate"] == 1.0


def test_orphan_keys_lists_platform_ids_that_name_no_known_coin(coins):
    add(coins, FactCryptoMarket, quote(5, T1, platform_id=999), quote(5, T2, platform_id=999),
        quote(1027, T1, platform_id=1))
    orphans = rows(coins, "SELECT table_name, orphan_key, row_count, first_seen, last_seen FROM qa.orphan_keys "
                          "ORDER BY table_name")
    assert orphans == [
        {"table_name": "dim_crypto_id", "orphan_key": 999, "row_count": 1, "first_seen": T1, "last_seen": T1},
        {"table_name": "fact_crypto_market", "orphan_key": 999, "row_count": 2, "first_seen": T1, "last_seen": T2}]


def test_out_of_range_kpis_lists_impossible_values_and_nothing_else(coins):
    add(coins, FactCryptoMarket, quote(1, T1, 90000.0, market_cap_dominance_usd=55.0),
        quote(5, T1, -1.0), quote(1027, T1, 3000.0, circulating_supply=2e6, max_supply=1e6))
    add(coins, FactMarketSentiment, {"source": "latest", "snapshot_timestamp": T1, "fear_greed_score": 150,
                                     "extracted_at": T1})
    add(coins, FactCryptoDaily, {"crypto_id": 1, "snapshot_date": date(2026, 11, 25), "open_usd": 1.0,
                                 "high_usd": 2.0, "low_usd": 1.0, "close_usd": 1.5, "n_snapshots": 2,
                                 "first_snapshot_timestamp": T1, "snapshot_timestamp": T2,
                                 "running_max_close_usd": 1.5, "drawdown": 0.2})
    found = rows(coins, "SELECT table_name, column_name, row_key, value FROM qa.out_of_range_kpis "
                        "ORDER BY table_name, column_name")
    assert found == [
        {"table_name": "fact_crypto_daily", "column_name": "drawdown", "row_key": "1 2026-11-25", "value": 0.2},
        {"table_name": "fact_crypto_market", "column_name": "circulating_supply", "row_key": "1027", "value": 2e6},
        {"table_name": "fact_crypto_market", "column_name": "price_usd", "row_key": "5", "value": -1.0},
        {"table_name": "fact_market_sentiment", "column_name": "fear_greed_score", "row_key": "latest",
         "value": 150.0}]


def test_load_latency_is_the_time_from_the_newest_snapshot_to_its_load(coins):
    add(coins, FactCryptoMarket, quote(1, T1), quote(1, T2))
    add(coins, LoadWatermark, {"table_name": "fact_crypto_market", "delta_version": 7,
                               "loaded_at": T2 + timedelta(minutes=30), "rows": 2})
    [latency] = rows(coins, "SELECT * FROM qa.load_latency")
    assert (latency["table_name"], latency["delta_version"], latency["rows_loaded"]) == ("fact_crypto_market", 7, 2)
    assert latency["latest_snapshot"] == T2 and latency["minutes_snapshot_to_load"] == pytest.approx(30)


def test_rejected_rows_by_reason_counts_pending_and_resolved(conn):
    rejected = {"table_name": "fact_crypto_market", "reason": "unknown crypto_id", "first_seen_at": T1,
                "last_seen_at": T2}
    for crypto_id, attempts, resolved in ((7, 3, None), (8, 1, None), (9, 2, T2)):
        add(conn, RejectedRow, {**rejected, "row_key": {"crypto_id": crypto_id, "snapshot_timestamp": T1.isoformat()},
                                "row_data": {"crypto_id": crypto_id}, "attempts": attempts, "resolved_at": resolved})
    add(conn, RejectedRow, {**rejected, "reason": "NULL key", "row_key": {"crypto_id": None}, "row_data": {},
                            "attempts": 1})
    summary = rows(conn, "SELECT reason, pending_rows, resolved_rows, attempts FROM qa.rejected_rows_by_reason "
                         "ORDER BY reason")
    assert summary == [{"reason": "NULL key", "pending_rows": 1, "resolved_rows": 0, "attempts": 1},
                       {"reason": "unknown crypto_id", "pending_rows": 2, "resolved_rows": 1, "attempts": 6}]
