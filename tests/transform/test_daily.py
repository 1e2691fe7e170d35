"""fact_crypto_daily recomputed incrementally equals a full recomputation, in the cases that stress it:
late data for a past day (later windows and running maxima depend on it) and a coin that comes back after
more than the 30-day lookback."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest

from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from cryptolake.spark_apps.transform.runner import run_group
from tests.conftest import settings_for
from tests.transform import expected as E
from tests.transform.bronze import Market, write_snapshot

pytestmark = pytest.mark.spark
START = date(2026, 3, 2)
COLUMNS = ["open_usd", "high_usd", "low_usd", "close_usd", "n_snapshots", "snapshot_timestamp", "log_return",
           "volatility_7d", "volatility_30d", "corr_btc_30d", "running_max_close_usd", "drawdown", "run_id",
           "source_file"]


def listings(lake: Lake, market: Market, day: date, hour: int, without: set[int] = frozenset()) -> None:
    ts = datetime.combine(day, time(hour), tzinfo=timezone.utc)
    rows = [r for r in market.listings(ts) if r["crypto_id"] not in without]
    write_snapshot(lake, "crypto_listings_latest", ts, rows)


def check(lake: Lake) -> None:
    market, _ = E.market(lake)
    E.assert_close(E.silver(lake, "fact_crypto_daily"), E.daily(market), ["crypto_id", "snapshot_date"], COLUMNS,
                   rel=1e-7)


def daily_record(lake: Lake):
    return Ledger(lake).latest("transform", "fact_crypto_daily")


def test_late_data_for_a_past_day_recomputes_from_that_day_on(spark, file_lake):
    settings, market = settings_for(file_lake.uri, {}), Market(coins=6)
    for n in range(8):
        for hour in (9, 17):
            listings(file_lake, market, START + timedelta(days=n), hour)
    assert run_group(spark, settings, "5x", file_lake).exit_code == 0
    check(file_lake)
    # a snapshot of day 3 arrives late, after the day's last one: its close (and what follows) changes
    listings(file_lake, market, START + timedelta(days=2), 20)
    assert run_group(spark, settings, "5x", file_lake).exit_code == 0
    assert daily_record(file_lake).details["recomputed"] == [(START + timedelta(days=2)).isoformat(),
                                                             (START + timedelta(days=7)).isoformat()]
    check(file_lake)
    # and a normal new day touches that day only
    listings(file_lake, market, START + timedelta(days=8), 9)
    assert run_group(spark, settings, "5x", file_lake).exit_code == 0
    day = (START + timedelta(days=8)).isoformat()
    assert daily_record(file_lake).details["recomputed"] == [day, day]
    check(file_lake)


def test_a_coin_back_after_the_lookback_continues_its_history(spark, file_lake):
    """Coin 100 trades for 3 days, disappears for 40, comes back: its return and running maximum reach back
    to its last stored day, which lies outside the 30-day lookback (found through the per-coin index)."""
    settings, market = settings_for(file_lake.uri, {}), Market(coins=5)
    for n in range(3):
        listings(file_lake, market, START + timedelta(days=n), 9)
    assert run_group(spark, settings, "5x", file_lake).exit_code == 0
    for n in range(3, 44):
        listings(file_lake, market, START + timedelta(days=n), 9, without={100})
    assert run_group(spark, settings, "5x", file_lake).exit_code == 0
    listings(file_lake, market, START + timedelta(days=44), 9)
    assert run_group(spark, settings, "5x", file_lake).exit_code == 0
    check(file_lake)
    daily = E.silver(file_lake, "fact_crypto_daily")
    back = daily[(daily.crypto_id == 100)].sort_values("snapshot_date")
    assert len(back) == 4 and back.log_return.iloc[-1] is not None
    assert back.running_max_close_usd.iloc[-1] == max(back.close_usd)
