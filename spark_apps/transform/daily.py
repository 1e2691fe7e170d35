"""fact_crypto_daily: per coin and UTC day, OHLC of the day's snapshots and the return/risk KPIs.

Definitions (all on price_usd of silver fact_crypto_market):
- open/close: price of the day's first/last snapshot; high/low: max/min; n_snapshots.
- log_return: ln(close / close of the coin's previous observed day), the raw return over the whole gap
  (weekends and missed days are bridged, not filled); return_gap_days: the calendar days it spans (3 Fri->Mon).
- log_return_gap_scaled = log_return / sqrt(return_gap_days): the gap's return brought to a one-day horizon
  (under a random walk the variance of a g-day return is g times a one-day one). Only it enters the windows,
  so weekday-only snapshots do not inflate volatility with every Monday's three-day return.
- volatility_7d / volatility_30d: sample standard deviation of the gap-scaled returns dated in the last 7 / 30
  calendar days (current day included); NULL with fewer than two returns.
  volatility_7d_annualized / volatility_30d_annualized = volatility * sqrt(365) (crypto trades every day).
- corr_btc_30d: Pearson correlation of the coin's and BTC's (crypto_id 1) gap-scaled returns on the days both
  have one in the last 30 calendar days; NULL with fewer than two pairs or no variance.
- running_max_close_usd: the highest close so far; drawdown = close / running max - 1 (0 at a new high).

Incremental, no rescans: a run recomputes only the day range R = [first affected day, last affected day] (or up
to the newest day already in the table when late data lands in the past, since later windows depend on it).
It reads fact_crypto_market for R (partition pruning) and, as lookback, the stored daily rows of the 30 days
before R; a coin absent from that lookback but seen before (known from a small per-coin index,
silver/_crypto_daily_coins) contributes its stored last row, so returns, the running maximum and the windows are
exactly those of a full recomputation. R is written with replaceWhere on snapshot_date.

Schema evolution: a table written by a version without some declared columns gets them on its next run, which
recomputes every stored day (the stored KPIs follow the older definitions and cannot serve as lookback). The new
columns and the recomputed rows land in one commit (mergeSchema), so a run killed before it leaves the old table
to be upgraded again; the appended columns are then moved to their declared place (metadata only).
"""

from __future__ import annotations

import math
from datetime import date, timedelta, timezone

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cryptolake import logs
from cryptolake.spark_apps.transform.base import BaseTransformer, StepResult, conform
from cryptolake.spark_apps.transform.quality import safe_div
from cryptolake.spark_apps.transform.tables import TABLES, Table

log = logs.get(__name__)
BTC_ID = 1
LOOKBACK_DAYS = 30
ANNUALIZE = math.sqrt(365)  # crypto trades every calendar day
SOURCE = "crypto_listings_latest"
INDEX = "_crypto_daily_coins"
INDEX_SCHEMA = T.StructType([T.StructField("crypto_id", T.LongType(), False),
                             T.StructField("first_date", T.DateType(), False),
                             T.StructField("last_date", T.DateType(), False)])


def build_crypto_daily(tf: BaseTransformer) -> StepResult:
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


def _recompute(tf: BaseTransformer, days: list[date], record, result) -> None:
    table = TABLES["fact_crypto_daily"]
    tf.ensure(table)
    stored_columns = tf.read_silver(table.name).columns
    added = [c for c in table.column_names if c not in stored_columns]
    tf.ensure_table(INDEX, INDEX_SCHEMA, [])
    index = {r["crypto_id"]: (r["first_date"], r["last_date"]) for r in tf.read_silver(INDEX).collect()}
    newest_stored = max((last for _, last in index.values()), default=None)
    first = days[0]
    if added:  # rows of an older definition: recompute every stored day once (see the module doc)
        first = min([first, *(f for f, _ in index.values())])
        result.details["added_columns"] = added
    last = max(days[-1], newest_stored) if newest_stored and first <= newest_stored else days[-1]
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
        # one pass over the recomputed days: per coin its first/last day and snapshot count (the index update)
        coins = {r["crypto_id"]: (r["first"], r["last"], r["n"]) for r in ohlc.groupBy("crypto_id").agg(
            F.min("snapshot_date").alias("first"), F.max("snapshot_date").alias("last"),
            F.sum("n_snapshots").alias("n")).collect()}
        # an upgraded table is recomputed from its first day: it has no history before R (nor the columns)
        prior = None if added else _prior_rows(tf, set(coins) | {BTC_ID}, index, first)
        rows = conform(compute(ohlc, prior), table)
        where = f"snapshot_date >= DATE'{first.isoformat()}' AND snapshot_date <= DATE'{last.isoformat()}'"
        # mergeSchema: new columns and the recomputation of every stored day land in one commit
        tf._with_metadata(record, lambda: rows.write.format("delta").mode("overwrite").option("replaceWhere", where)
                          .option("mergeSchema", bool(added)).save(tf.uri(table.name)), {"replace_where": where})
        version, metrics = tf.last_commit(table.name, record)
    finally:
        ohlc.unpersist()
    if stored_columns != table.column_names:
        _declared_order(tf, table, record)
    _write_index(tf, index, coins)
    result.rows_in, result.delta_version = sum(n for _, _, n in coins.values()), version
    result.rows_written = int((metrics or {}).get("numOutputRows", 0))


def _declared_order(tf: BaseTransformer, table: Table, record) -> None:
    """Move columns that schema evolution appended at the end to their declared place (metadata-only commits;
    also completes a run killed between its write and this step)."""
    current = tf.read_silver(table.name).columns
    declared = table.column_names
    for i, name in enumerate(declared):
        if current.index(name) == i:
            continue
        position = f"AFTER `{declared[i - 1]}`" if i else "FIRST"
        tf._with_metadata(record, lambda: tf.spark.sql(
            f"ALTER TABLE delta.`{tf.uri(table.name)}` ALTER COLUMN `{name}` {position}"), {"moved_column": name})
        current.remove(name)
        current.insert(i, name)


def _prior_rows(tf: BaseTransformer, coins: set[int], index: dict, first: date) -> DataFrame:
    """Stored daily rows before R that R's windows and running maxima need (see the module doc)."""
    columns = ["crypto_id", "snapshot_date", "close_usd", "log_return", "log_return_gap_scaled",
               "running_max_close_usd"]
    look_from = first - timedelta(days=LOOKBACK_DAYS)
    daily = tf.read_silver("fact_crypto_daily").select(*columns)
    wanted = sorted(coins)
    lookback = daily.where(F.col("snapshot_date").between(F.lit(look_from), F.lit(first - timedelta(days=1)))) \
                    .where(F.col("crypto_id").isin(wanted))
    seen_before = {c: index[c] for c in coins if c in index and index[c][0] < first}
    # usual case: all of a coin's rows are before R, so the index tells whether its last one is in the lookback
    gone = {c: l for c, (_, l) in seen_before.items() if l < look_from}
    # late data: the coin also has rows after R; whether one lies in the lookback needs a look
    late = sorted(c for c, (_, l) in seen_before.items() if l >= first)
    if late:
        present = {r[0] for r in lookback.where(F.col("crypto_id").isin(late)).select("crypto_id").distinct().collect()}
        late = [c for c in late if c not in present]
    parts = [lookback]
    if gone:
        parts.append(daily.where(F.col("snapshot_date").isin(sorted(set(gone.values()))))
                     .where(F.col("crypto_id").isin(sorted(gone))))
        log.info("fact_crypto_daily: %d coins return after more than %d days", len(gone), LOOKBACK_DAYS)
    if late:  # rare: a backfill for a coin absent from the lookback; reads its older partitions
        newest = Window.partitionBy("crypto_id").orderBy(F.col("snapshot_date").desc())
        parts.append(daily.where(F.col("snapshot_date") < F.lit(look_from)).where(F.col("crypto_id").isin(late))
                     .withColumn("_n", F.row_number().over(newest)).filter("_n = 1").drop("_n"))
    prior = parts[0]
    for part in parts[1:]:
        prior = prior.unionByName(part)
    return prior


def _write_index(tf: BaseTransformer, index: dict, coins: dict) -> None:
    """First and last stored day per coin (least/greatest: re-runs and any order give the same index).

    The index is derived state, a few thousand rows: it is rewritten whole, in one atomic Delta commit.
    """
    merged = dict(index)
    for coin, (first, last, _) in coins.items():
        old = merged.get(coin)
        merged[coin] = (min(first, old[0]), max(last, old[1])) if old else (first, last)
    if merged == index:
        return
    rows = [(c, f, l) for c, (f, l) in sorted(merged.items())]
    tf.spark.createDataFrame(rows, INDEX_SCHEMA).coalesce(1).write.format("delta").mode("overwrite") \
        .save(tf.uri(INDEX))


def compute(current: DataFrame, prior: DataFrame | None = None) -> DataFrame:
    """Window KPIs for the `current` day rows (OHLC), with `prior` stored rows as history. Pure: testable."""
    no_return = F.lit(None).cast("double")
    rows = current.select("*", no_return.alias("log_return"), no_return.alias("log_return_gap_scaled"),
                          F.col("close_usd").alias("_m"), F.lit(True).alias("_current"))
    if prior is not None:
        rows = rows.unionByName(prior.select(
            "crypto_id", "snapshot_date", "close_usd", "log_return", "log_return_gap_scaled",
            F.col("running_max_close_usd").alias("_m"), F.lit(False).alias("_current")), allowMissingColumns=True)
    rows = rows.withColumn("_day", F.unix_date("snapshot_date"))
    # one partitioning and ordering (coin, day) for every per-coin window, so one sort serves them all
    by_day = Window.partitionBy("crypto_id").orderBy("_day")

    def new_or_stored(name: str, column):
        """Computed for the current rows; the stored value for the prior rows (their predecessors are not read)."""
        return F.when(F.col("_current"), column).otherwise(F.col(name))

    rows = (rows
            .withColumn("return_gap_days", F.when(F.col("_current"), F.col("_day") - F.lag("_day").over(by_day)))
            .withColumn("log_return", new_or_stored("log_return",
                                                    F.ln(F.col("close_usd") / F.lag("close_usd").over(by_day))))
            .withColumn("log_return_gap_scaled", new_or_stored("log_return_gap_scaled",
                                                               F.col("log_return") / F.sqrt("return_gap_days")))
            .withColumn("running_max_close_usd",
                        F.max("_m").over(by_day.rowsBetween(Window.unboundedPreceding, Window.currentRow)))
            # BTC's return of the same day, without a self-join (which would compute the rows twice)
            .withColumn("_btc", F.max(F.when(F.col("crypto_id") == BTC_ID, F.col("log_return_gap_scaled")))
                        .over(Window.partitionBy("_day"))))

    def trailing(days: int):
        return by_day.rangeBetween(-(days - 1), 0)

    def finite(column):
        return F.nanvl(column, F.lit(None).cast("double"))

    scaled = F.col("log_return_gap_scaled")
    pairs = F.col("_btc").isNotNull() & scaled.isNotNull()
    rows = (rows
            .withColumn("volatility_7d", F.stddev_samp(scaled).over(trailing(7)))
            .withColumn("volatility_30d", F.stddev_samp(scaled).over(trailing(30)))
            .withColumn("volatility_7d_annualized", F.col("volatility_7d") * ANNUALIZE)
            .withColumn("volatility_30d_annualized", F.col("volatility_30d") * ANNUALIZE)
            .withColumn("corr_btc_30d", finite(F.corr(F.when(pairs, scaled), F.when(pairs, F.col("_btc")))
                                               .over(trailing(30))))
            .withColumn("drawdown", safe_div("close_usd", "running_max_close_usd") - 1))
    return rows.where("_current").drop("_m", "_current", "_day", "_btc")
