"""fact_crypto_daily: per coin and UTC day, OHLC of the day's snapshots and the return/risk KPIs.

Definitions (all on price_usd of silver fact_crypto_market):
- open/close: price of the day's first/last snapshot; high/low: max/min; n_snapshots.
- log_return: ln(close / close of the coin's previous observed day) (weekends and gaps are bridged).
- volatility_7d / volatility_30d: sample standard deviation of the log returns dated in the last 7 / 30 calendar
  days (current day included); NULL with fewer than two returns.
- corr_btc_30d: Pearson correlation of the coin's and BTC's (crypto_id 1) log returns on the days both have one
  in the last 30 calendar days; NULL with fewer than two pairs or no variance.
- running_max_close_usd: the highest close so far; drawdown = close / running max - 1 (0 at a new high).

Incremental, no rescans: a run recomputes only the day range R = [first affected day, last affected day] (or up
to the newest day already in the table when late data lands in the past, since later windows depend on it).
It reads fact_crypto_market for R (partition pruning) and, as lookback, the stored daily rows of the 30 days
before R; a coin absent from that lookback but seen before (known from a small per-coin index,
silver/_crypto_daily_coins) contributes its stored last row, so returns, the running maximum and the windows are
exactly those of a full recomputation. R is written with replaceWhere on snapshot_date.
"""

from __future__ import annotations

from datetime import date, timedelta, timezone
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cryptolake import logs
from cryptolake.spark_apps.transform.quality import safe_div
from cryptolake.spark_apps.transform.tables import TABLES

if TYPE_CHECKING:
    from cryptolake.spark_apps.transform.base import BaseTransformer, StepResult

log = logs.get(__name__)
BTC_ID = 1
LOOKBACK_DAYS = 30
SOURCE = "crypto_listings_latest"
INDEX = "_crypto_daily_coins"
INDEX_SCHEMA = T.StructType([T.StructField("crypto_id", T.LongType(), False),
                             T.StructField("first_date", T.DateType(), False),
                             T.StructField("last_date", T.DateType(), False)])


def build_crypto_daily(tf: "BaseTransformer") -> "StepResult":
    from cryptolake.spark_apps.transform.base import StepResult

    table = TABLES["fact_crypto_daily"]
    state = tf.tracker.state(table.name)
    upstream = tf.tracker.state("fact_crypto_market").source(SOURCE)
    # only snapshots fact_crypto_market has already taken in (it runs first in the same group)
    pending = tf.tracker.pending(SOURCE, state.source(SOURCE), also=upstream.consumed)
    if not pending.seen:
        log.info("fact_crypto_daily is up to date")
        return StepResult(table.name, "up-to-date")
    with tf.ledger.run("transform", table.name, params={"group": tf.group}) as record:
        record.upstream = {SOURCE: [s.run_id for s in pending.snapshots]} if pending.snapshots else {}
        result = StepResult(table.name, "success", record.run_id)
        if pending.snapshots:
            days = sorted({s.started_at.astimezone(timezone.utc).date() for s in pending.snapshots})
            _recompute(tf, days, record, result)
        else:
            record.status = result.status = "skipped"
        tf.finish(record, result, state, {SOURCE: pending})
    return result


def _recompute(tf: "BaseTransformer", days: list[date], record, result) -> None:
    spark, table = tf.spark, TABLES["fact_crypto_daily"]
    tf.ensure(table)
    tf.ensure_table(INDEX, INDEX_SCHEMA, [])
    index = tf.read_silver(INDEX)
    newest_stored = index.agg(F.max("last_date")).collect()[0][0]
    first = days[0]
    last = max(days[-1], newest_stored) if newest_stored and first <= newest_stored else days[-1]
    look_from = first - timedelta(days=LOOKBACK_DAYS)
    result.details.update(affected_days=[d.isoformat() for d in days], recomputed=[first.isoformat(), last.isoformat()])

    market = (tf.read_silver("fact_crypto_market")
              .where(F.col("snapshot_date").between(F.lit(first), F.lit(last)))
              .select("crypto_id", "snapshot_date", "snapshot_timestamp", "price_usd", "run_id", "source_file"))
    ohlc = (market.groupBy("crypto_id", "snapshot_date").agg(
        F.min_by("price_usd", "snapshot_timestamp").alias("open_usd"),
        F.max("price_usd").alias("high_usd"),
        F.min("price_usd").alias("low_usd"),
        F.max_by("price_usd", "snapshot_timestamp").alias("close_usd"),
        F.count(F.lit(1)).cast("int").alias("n_snapshots"),
        F.min("snapshot_timestamp").alias("first_snapshot_timestamp"),
        F.max("snapshot_timestamp").alias("snapshot_timestamp"),
        F.max_by("run_id", "snapshot_timestamp").alias("run_id"),
        F.max_by("source_file", "snapshot_timestamp").alias("source_file"),
    ).persist())
    try:
        rows_in = ohlc.agg(F.sum("n_snapshots")).collect()[0][0] or 0
        _write(tf, table, ohlc, index, first, last, look_from, record)
        version, metrics = tf.last_commit(table.name)
        _update_index(tf, ohlc)
    finally:
        ohlc.unpersist()
    result.rows_in, result.delta_version = rows_in, version
    result.rows_written = int(metrics.get("numOutputRows", 0))


def _prior_rows(tf: "BaseTransformer", ohlc: DataFrame, index: DataFrame, first: date,
                look_from: date) -> DataFrame:
    """Stored daily rows before R that R's windows and running maxima need (see the module doc)."""
    columns = ["crypto_id", "snapshot_date", "close_usd", "log_return", "running_max_close_usd"]
    daily = tf.read_silver("fact_crypto_daily")
    coins = ohlc.select("crypto_id").distinct().union(tf.spark.range(1).select(F.lit(BTC_ID).cast("long")))
    lookback = (daily.where(F.col("snapshot_date").between(F.lit(look_from), F.lit(first - timedelta(days=1))))
                .select(*columns).join(coins, "crypto_id", "left_semi"))
    # coins seen before R but not in the lookback: their last stored row before R
    absent = (coins.join(index.where(F.col("first_date") < F.lit(first)), "crypto_id")
              .join(lookback.select("crypto_id").distinct(), "crypto_id", "left_anti")
              .select("crypto_id", "last_date").collect())
    if not absent:
        return lookback
    ids = [r["crypto_id"] for r in absent]
    dates = sorted({r["last_date"] for r in absent if r["last_date"] < first})
    older = daily.where(F.col("crypto_id").isin(ids))
    if all(r["last_date"] < first for r in absent):
        older = older.where(F.col("snapshot_date").isin(dates))  # exact partitions (the usual case)
    else:
        older = older.where(F.col("snapshot_date") < F.lit(look_from))  # late data for a returning coin: rare
    newest = Window.partitionBy("crypto_id").orderBy(F.col("snapshot_date").desc())
    older = (older.where(F.col("snapshot_date") < F.lit(first)).select(*columns)
             .withColumn("_n", F.row_number().over(newest)).filter("_n = 1").drop("_n"))
    log.info("fact_crypto_daily: %d coins return after more than %d days", len(ids), LOOKBACK_DAYS)
    return lookback.unionByName(older)


def compute(current: DataFrame, prior: DataFrame) -> DataFrame:
    """Window KPIs for the `current` day rows (OHLC), with `prior` stored rows as history. Pure: testable."""
    prior = prior.select("crypto_id", "snapshot_date", "close_usd", "log_return",
                         F.col("running_max_close_usd").alias("_m"), F.lit(False).alias("_current"))
    cur = current.withColumn("log_return", F.lit(None).cast("double")) \
                 .withColumn("_m", F.col("close_usd")).withColumn("_current", F.lit(True))
    rows = cur.unionByName(prior, allowMissingColumns=True)
    by_day = Window.partitionBy("crypto_id").orderBy("snapshot_date")
    rows = (rows
            .withColumn("log_return", F.when(F.col("_current"),
                                             F.ln(F.col("close_usd") / F.lag("close_usd").over(by_day)))
                        .otherwise(F.col("log_return")))
            .withColumn("running_max_close_usd",
                        F.max("_m").over(by_day.rowsBetween(Window.unboundedPreceding, Window.currentRow)))
            .withColumn("_day", F.unix_date("snapshot_date")))
    btc = rows.where(F.col("crypto_id") == BTC_ID).select("snapshot_date", F.col("log_return").alias("_btc"))
    rows = rows.join(btc, "snapshot_date", "left")

    def trailing(days: int):
        return Window.partitionBy("crypto_id").orderBy("_day").rangeBetween(-(days - 1), 0)

    def finite(column):
        return F.nanvl(column, F.lit(None).cast("double"))

    pairs = F.col("_btc").isNotNull() & F.col("log_return").isNotNull()
    rows = (rows
            .withColumn("volatility_7d", F.stddev_samp("log_return").over(trailing(7)))
            .withColumn("volatility_30d", F.stddev_samp("log_return").over(trailing(30)))
            .withColumn("corr_btc_30d", finite(F.corr(F.when(pairs, F.col("log_return")),
                                                      F.when(pairs, F.col("_btc"))).over(trailing(30))))
            .withColumn("drawdown", safe_div("close_usd", "running_max_close_usd") - 1))
    return rows.where("_current").drop("_m", "_current", "_day", "_btc")


def _write(tf: "BaseTransformer", table, ohlc: DataFrame, index: DataFrame, first: date, last: date,
           look_from: date, record) -> None:
    from cryptolake.spark_apps.transform.base import conform

    prior = _prior_rows(tf, ohlc, index, first, look_from)
    rows = conform(compute(ohlc, prior), table)
    where = f"snapshot_date >= DATE'{first.isoformat()}' AND snapshot_date <= DATE'{last.isoformat()}'"
    tf._with_metadata(record, lambda: rows.write.format("delta").mode("overwrite").option("replaceWhere", where)
                      .save(tf.uri(table.name)), {"replace_where": where})


def _update_index(tf: "BaseTransformer", ohlc: DataFrame) -> None:
    """First and last stored day per coin: order-independent (least/greatest), so re-runs change nothing."""
    from delta.tables import DeltaTable

    seen = ohlc.groupBy("crypto_id").agg(F.min("snapshot_date").alias("first_date"),
                                         F.max("snapshot_date").alias("last_date"))
    (DeltaTable.forPath(tf.spark, tf.uri(INDEX)).alias("t")
     .merge(seen.alias("s"), "t.crypto_id = s.crypto_id")
     .whenMatchedUpdate("s.first_date < t.first_date OR s.last_date > t.last_date",
                        {"first_date": "least(t.first_date, s.first_date)",
                         "last_date": "greatest(t.last_date, s.last_date)"})
     .whenNotMatchedInsertAll().execute())
