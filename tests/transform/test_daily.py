"""fact_crypto_daily recomputed incrementally equals a full recomputation, in the cases that stress it:
late data for a past day (later windows and running maxima depend on it), a coin that comes back after
more than the 30-day lookback, weekday-only snapshots (gap-scaled returns, checked by hand), and a table
written by a version without the newer columns."""

from __future__ import annotations

import dataclasses
import math
from datetime import date, datetime, time, timedelta, timezone

import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from cryptolake.spark_apps.transform.runner import run_group
from cryptolake.spark_apps.transform.tables import TABLES
from tests.conftest import settings_for
from tests.transform import expected as E
from tests.transform.bronze import Market, write_snapshot

pytestmark = pytest.mark.spark
START = date(2026, 3, 2)
COLUMNS = ["open_usd", "high_usd", "low_usd", "close_usd", "n_snapshots", "snapshot_timestamp", "log_return",
           "return_gap_days", "log_return_gap_scaled", "volatility_7d", "volatility_30d", "volatility_7d_annualized",
           "volatility_30d_annualized", "corr_btc_30d", "running_max_close_usd", "drawdown", "run_id", "source_file"]
# columns fact_crypto_daily did not have before returns were scaled by their gap
NEWER = ("return_gap_days", "log_return_gap_scaled", "volatility_7d_annualized", "volatility_30d_annualized")
# coin 100 on weekday-only snapshots: its log return on each weekday (Monday's spans the weekend: 3 days)
WEEKDAY_RETURNS = {0: 0.06, 1: 0.01, 2: -0.02, 3: 0.03, 4: -0.01}


def listings(lake: Lake, market: Market, day: date, hour: int, without: set[int] = frozenset(),
             prices: dict[int, float] | None = None) -> None:
    ts = datetime.combine(day, time(hour), tzinfo=timezone.utc)
    rows = [{**r, "price_usd": (prices or {}).get(r["crypto_id"], r["price_usd"])}
            for r in market.listings(ts) if r["crypto_id"] not in without]
    write_snapshot(lake, "crypto_listings_latest", ts, rows)


def weekdays(first: int, last: int) -> list[date]:
    """The weekdays among START + first .. START + last days (START is a Monday)."""
    return [START + timedelta(days=n) for n in range(first, last + 1) if (START + timedelta(days=n)).weekday() < 5]


def weekday_listings(lake: Lake, market: Market, days: list[date]) -> None:
    """One snapshot per weekday; coin 100's price follows WEEKDAY_RETURNS from 100 USD on START."""
    for day in days:
        log_price = sum(WEEKDAY_RETURNS[d.weekday()] for d in weekdays(1, (day - START).days))
        listings(lake, market, day, 9, prices={100: 100 * math.exp(log_price)})


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
    assert run_group(spark, settings, "10x", file_lake).exit_code == 0
    check(file_lake)
    # a snapshot of day 3 arrives late, after the day's last one: its close (and what follows) changes
    listings(file_lake, market, START + timedelta(days=2), 20)
    assert run_group(spark, settings, "10x", file_lake).exit_code == 0
    assert daily_record(file_lake).details["recomputed"] == [(START + timedelta(days=2)).isoformat(),
                                                             (START + timedelta(days=7)).isoformat()]
    check(file_lake)
    # and a normal new day touches that day only
    listings(file_lake, market, START + timedelta(days=8), 9)
    assert run_group(spark, settings, "10x", file_lake).exit_code == 0
    day = (START + timedelta(days=8)).isoformat()
    assert daily_record(file_lake).details["recomputed"] == [day, day]
    check(file_lake)


def test_a_coin_back_after_the_lookback_continues_its_history(spark, file_lake):
    """Coin 100 trades for 3 days, disappears for 40, comes back: its return and running maximum reach back
    to its last stored day, which lies outside the 30-day lookback (found through the per-coin index)."""
    settings, market = settings_for(file_lake.uri, {}), Market(coins=5)
    for n in range(3):
        listings(file_lake, market, START + timedelta(days=n), 9)
    assert run_group(spark, settings, "10x", file_lake).exit_code == 0
    for n in range(3, 44):
        listings(file_lake, market, START + timedelta(days=n), 9, without={100})
    assert run_group(spark, settings, "10x", file_lake).exit_code == 0
    listings(file_lake, market, START + timedelta(days=44), 9)
    assert run_group(spark, settings, "10x", file_lake).exit_code == 0
    check(file_lake)
    daily = E.silver(file_lake, "fact_crypto_daily")
    back = daily[(daily.crypto_id == 100)].sort_values("snapshot_date")
    assert len(back) == 4
    returned, before = back.iloc[-1], back.iloc[-2]
    assert returned.return_gap_days == 42
    assert pd.notna(returned.log_return)
    assert returned.log_return == pytest.approx(math.log(returned.close_usd / before.close_usd), rel=1e-12)
    assert returned.log_return_gap_scaled == pytest.approx(returned.log_return / math.sqrt(42), rel=1e-12)
    assert returned.running_max_close_usd == max(back.close_usd)


def test_weekday_only_snapshots_scale_the_weekend_return_by_sqrt_3(spark, file_lake):
    """Three weeks of Mon-Fri snapshots, one transform run per week. On the third Monday, coin 100's 7-day
    window holds the returns 0.01, -0.02, 0.03, -0.01 (Tue-Fri) and the weekend's 0.06, which enters as
    0.06 / sqrt(3) = 0.0346410: mean 0.0089282, volatility_7d = sqrt(sum of squared deviations / 4) = 0.0239866
    (unscaled it would be 0.0320936); the 30-day window holds those five values twice (from the first Tuesday
    on): volatility_30d = 0.0226148."""
    settings, market = settings_for(file_lake.uri, {}), Market(coins=5)
    for week in range(3):
        weekday_listings(file_lake, market, weekdays(7 * week, 7 * week + 6))
        assert run_group(spark, settings, "10x", file_lake).exit_code == 0
    check(file_lake)
    daily = E.silver(file_lake, "fact_crypto_daily")
    [monday] = daily[(daily.crypto_id == 100) & (daily.snapshot_date == START + timedelta(days=14))].itertuples()
    assert monday.log_return == pytest.approx(0.06, rel=1e-9)  # the raw return over the weekend stays
    assert monday.return_gap_days == 3
    assert monday.log_return_gap_scaled == pytest.approx(0.034641016151377546, rel=1e-9)
    assert monday.volatility_7d == pytest.approx(0.023986641779303382, rel=1e-9)
    assert monday.volatility_30d == pytest.approx(0.0226148227467173, rel=1e-9)
    assert monday.volatility_7d_annualized == pytest.approx(0.023986641779303382 * math.sqrt(365), rel=1e-9)
    assert monday.volatility_30d_annualized == pytest.approx(0.0226148227467173 * math.sqrt(365), rel=1e-9)
    # a coin's first day: no return, no gap, no volatility (NULL, not 0)
    first = daily[(daily.crypto_id == 100) & (daily.snapshot_date == START)].iloc[0]
    assert first[["log_return", "return_gap_days", "log_return_gap_scaled", "volatility_7d",
                  "volatility_7d_annualized"]].isna().all()


def as_an_older_version_wrote_it(spark, lake: Lake, older) -> None:
    """fact_crypto_daily rewritten with the older version's columns only, and volatility_7d doubled to stand
    for the values of the older definition."""
    path = lake.spark_uri("silver/fact_crypto_daily")
    rows = (spark.read.format("delta").load(path).withColumn("volatility_7d", F.col("volatility_7d") * 2)
            .select(*older.column_names).collect())
    spark.createDataFrame(rows, older.schema).write.format("delta").mode("overwrite") \
        .option("overwriteSchema", "true").partitionBy("snapshot_date").save(path)


def test_a_table_of_an_older_version_gets_the_new_columns_on_its_next_run(spark, file_lake):
    """A table written without the newer columns: the next run adds them at their declared place and
    recomputes every stored day (their KPIs predate the gap scaling), equal to a full recomputation."""
    settings, market = settings_for(file_lake.uri, {}), Market(coins=5)
    table = TABLES["fact_crypto_daily"]
    older = dataclasses.replace(table, columns=tuple(c for c in table.columns if c.split()[0] not in NEWER))
    weekday_listings(file_lake, market, weekdays(0, 7))
    assert run_group(spark, settings, "10x", file_lake).exit_code == 0
    as_an_older_version_wrote_it(spark, file_lake, older)
    path = file_lake.uri_of("silver/fact_crypto_daily")
    assert [f.name for f in DeltaTable(path).schema().fields] == older.column_names

    weekday_listings(file_lake, market, weekdays(8, 8))
    assert run_group(spark, settings, "10x", file_lake).exit_code == 0
    record = daily_record(file_lake)
    assert record.details["added_columns"] == list(NEWER)
    assert record.details["recomputed"] == [START.isoformat(), (START + timedelta(days=8)).isoformat()]
    assert [f.name for f in DeltaTable(path).schema().fields] == table.column_names
    check(file_lake)
    # and from then on, runs are incremental again
    weekday_listings(file_lake, market, weekdays(9, 9))
    assert run_group(spark, settings, "10x", file_lake).exit_code == 0
    day = (START + timedelta(days=9)).isoformat()
    assert daily_record(file_lake).details["recomputed"] == [day, day]
    check(file_lake)
