"""Gold ML feature tables: `<LAKE_URI>/gold/features/<name>`, plain Delta (readable by pandas via delta-rs).

crypto_daily_features: one row per (crypto_id, feature_date) for every row of silver fact_crypto_daily; each
column's definition and point-in-time rule is in docs/gold-features.md. Point in time: a row of day D uses only
silver rows dated <= D (market snapshots of D or earlier, fear & greed published before the end of D), so the
row of a past day is the same whether it was computed then or later. `as_of_timestamp` is the newest snapshot
used: a row of the current day is provisional and is recomputed as the day's snapshots arrive.

Incremental like fact_crypto_daily (daily.py): the ledger tracker finds the listings snapshots fact_crypto_daily
has taken in and the fear & greed snapshots fact_market_sentiment has taken in since this table's last run; a
run recomputes the day range R = [first affected day, last affected day], extended to the newest stored day
when the first affected day lies in the past (later rows reference it). It reads R from silver plus, as
lookback, the stored feature rows of the LOOKBACK_DAYS before R (the reference closes and ranks), and writes R
with replaceWhere on feature_date. No new snapshots: no commit at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from cryptolake import logs
from cryptolake.lake import feature_path
from cryptolake.spark_apps.transform.base import BaseTransformer, StepResult, cast_to
from cryptolake.spark_apps.transform.daily import SOURCE as MARKET_SOURCE
from cryptolake.spark_apps.transform.tables import TABLES, _field

log = logs.get(__name__)
HORIZONS = (1, 7, 30)        # log_return_<h>d
RANK_HORIZONS = (1, 7)       # cmc_rank_change_<h>d
MAX_STALENESS_DAYS = 7       # a reference close/rank or a fear & greed value may be this much older than wanted
LOOKBACK_DAYS = max(HORIZONS) + MAX_STALENESS_DAYS
SENTIMENT_SOURCES = ("fear_greed_latest", "fear_greed_historical")
DATE_COLUMN = "feature_date"
SENTIMENT_COLUMNS = "snapshot_timestamp timestamp, source string, fear_greed_score int, sentiment_label string"


@dataclass(frozen=True)
class FeatureTable:
    name: str
    columns: tuple[str, ...]   # `name type[!]` as in tables.py
    upstream: str              # the silver table whose groups build it (it runs after it)
    reads: tuple[str, ...]     # silver tables read

    @property
    def path(self) -> str:
        return feature_path(self.name)

    @cached_property
    def schema(self):
        from pyspark.sql import types as T

        return T.StructType([_field(s) for s in self.columns])

    @property
    def groups(self) -> tuple[str, ...]:
        return TABLES[self.upstream].groups


CRYPTO_DAILY_FEATURES = FeatureTable("crypto_daily_features", (
    "crypto_id long!", f"{DATE_COLUMN} date!", "as_of_timestamp timestamp!", "n_snapshots int!", "close_usd double!",
    *(f"log_return_{h}d double" for h in HORIZONS),
    "volatility_7d double", "volatility_30d double", "corr_btc_30d double", "drawdown double",
    "volume_24h_usd double", "market_cap_usd double", "volume_to_market_cap_ratio double",
    "cmc_rank long", *(f"cmc_rank_change_{h}d long" for h in RANK_HORIZONS),
    "fear_greed_score int", "fear_greed_label string",
), upstream="fact_crypto_daily", reads=("fact_crypto_daily", "fact_crypto_market", "fact_market_sentiment"))
FEATURE_LIST: tuple[FeatureTable, ...] = (CRYPTO_DAILY_FEATURES,)


def features_of(group: str) -> list[FeatureTable]:
    """The feature tables a group builds (after its silver tables)."""
    return [f for f in FEATURE_LIST if group in f.groups]


def build_features(tf: BaseTransformer, feature: FeatureTable) -> StepResult:
    """One incremental run of a feature table, recorded in the ledger as step transform, name = the table."""
    state = tf.tracker.state(feature.name)
    # only what the silver tables it reads have taken in already (they run first in the same group)
    consumed = {MARKET_SOURCE: tf.tracker.state(feature.upstream).source(MARKET_SOURCE)}
    sentiment = tf.tracker.state("fact_market_sentiment")
    consumed.update({src: sentiment.source(src) for src in SENTIMENT_SOURCES})
    pending = {src: tf.tracker.pending(src, state.source(src), also=upstream.consumed)
               for src, upstream in consumed.items()}
    if not any(p.seen for p in pending.values()):
        log.info("%s is up to date", feature.name)
        return StepResult(feature.name, "up-to-date")
    with logs.context(table=feature.name), \
            tf.ledger.run("transform", feature.name, params={"group": tf.group}) as record:
        record.upstream = {src: [s.run_id for s in p.snapshots] for src, p in pending.items() if p.snapshots}
        result = StepResult(feature.name, "success", record.run_id)
        days = _affected_days(tf, pending)
        if days:
            _recompute(tf, feature, days, record, result)
        else:
            record.status = result.status = "skipped"
        tf.finish(record, result, state, pending)
        record.files = [feature.path]
    return result


def _affected_days(tf: BaseTransformer, pending: dict) -> list[date]:
    """Days whose features the pending snapshots change: a listings snapshot's day; for fear & greed, the days
    its values describe (the historical endpoint's reach back weeks), read from the sentiment rows they made."""
    days = {s.started_at.astimezone(timezone.utc).date() for s in pending[MARKET_SOURCE].snapshots}
    runs = sorted(s.run_id for src in SENTIMENT_SOURCES for s in pending[src].snapshots)
    if runs and tf.exists("fact_market_sentiment"):
        described = (tf.read_silver("fact_market_sentiment").where(F.col("run_id").isin(runs))
                     .select(F.to_date("snapshot_timestamp").alias("day")).distinct().collect())
        days.update(r["day"] for r in described)
    return sorted(days)


def _recompute(tf: BaseTransformer, feature: FeatureTable, days: list[date], record, result: StepResult) -> None:
    tf.ensure_table(feature.name, feature.schema, [DATE_COLUMN], location=feature.path, change_feed=False)
    stored = tf.spark.read.format("delta").load(tf.uri(feature.name, feature.path))
    newest = stored.agg(F.max(DATE_COLUMN)).collect()[0][0]
    first = days[0]
    last = max(days[-1], newest) if newest and first <= newest else days[-1]
    result.details.update(affected_days=[d.isoformat() for d in days], recomputed=[first.isoformat(), last.isoformat()])

    in_range = F.col("snapshot_date").between(F.lit(first), F.lit(last))
    daily = tf.read_silver("fact_crypto_daily").where(in_range).select(
        "crypto_id", F.col("snapshot_date").alias(DATE_COLUMN), "n_snapshots", "close_usd", "snapshot_timestamp",
        "volatility_7d", "volatility_30d", "corr_btc_30d", "drawdown")
    at_last = tf.read_silver("fact_crypto_market").where(in_range).groupBy(
        "crypto_id", F.col("snapshot_date").alias(DATE_COLUMN)).agg(
        *(F.max_by(c, "snapshot_timestamp").alias(c)
          for c in ("volume_24h_usd", "market_cap_usd", "volume_to_market_cap_ratio", "cmc_rank")))
    current = daily.join(at_last, ["crypto_id", DATE_COLUMN], "left")
    prior = stored.where(F.col(DATE_COLUMN).between(F.lit(first - timedelta(days=LOOKBACK_DAYS)),
                                                    F.lit(first - timedelta(days=1))))
    window_start = datetime.combine(first - timedelta(days=MAX_STALENESS_DAYS), time(0), tzinfo=timezone.utc)
    window_end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=timezone.utc)
    fear_greed = None
    if tf.exists("fact_market_sentiment"):
        fear_greed = tf.read_silver("fact_market_sentiment").where(
            (F.col("snapshot_timestamp") >= F.lit(window_start)) & (F.col("snapshot_timestamp") < F.lit(window_end)))
    rows = cast_to(compute(current, prior, fear_greed), feature.schema)
    where = f"{DATE_COLUMN} >= DATE'{first.isoformat()}' AND {DATE_COLUMN} <= DATE'{last.isoformat()}'"
    uri = tf.uri(feature.name, feature.path)
    tf._with_metadata(record, lambda: rows.write.format("delta").mode("overwrite").option("replaceWhere", where)
                      .save(uri), {"replace_where": where})
    version, metrics = tf.last_commit(feature.name, record, location=feature.path)
    result.delta_version = version
    result.rows_written = int((metrics or {}).get("numOutputRows", 0))
    result.rows_in = result.rows_written


def compute(current: DataFrame, prior: DataFrame | None = None, fear_greed: DataFrame | None = None) -> DataFrame:
    """Features of the `current` rows (per coin and day: close, n_snapshots, snapshot_timestamp, the daily KPIs
    and the values at the day's last snapshot), with `prior` stored feature rows as history for the reference
    closes and ranks, and `fear_greed` rows of fact_market_sentiment. Pure: testable on a tiny frame."""
    rows = current.withColumn("_current", F.lit(True))
    if prior is not None:
        rows = rows.unionByName(prior.select("crypto_id", DATE_COLUMN, "close_usd", "cmc_rank",
                                             F.lit(False).alias("_current")), allowMissingColumns=True)
    by_day = Window.partitionBy("crypto_id").orderBy(F.unix_date(DATE_COLUMN))
    for h in sorted(set(HORIZONS) | set(RANK_HORIZONS)):
        # the newest observed day in [D - h - MAX_STALENESS_DAYS, D - h]
        reference = F.max_by(F.struct("close_usd", "cmc_rank"), F.unix_date(DATE_COLUMN)).over(
            by_day.rangeBetween(-(h + MAX_STALENESS_DAYS), -h))
        rows = rows.withColumn(f"_ref{h}", reference)
        if h in HORIZONS:
            rows = rows.withColumn(f"log_return_{h}d", F.ln(F.col("close_usd") / F.col(f"_ref{h}.close_usd")))
        if h in RANK_HORIZONS:
            rows = rows.withColumn(f"cmc_rank_change_{h}d", F.col("cmc_rank") - F.col(f"_ref{h}.cmc_rank"))
    rows = rows.where("_current")
    return _with_fear_greed(rows, fear_greed).withColumn(
        "as_of_timestamp", F.greatest("snapshot_timestamp", F.col("_fg.snapshot_timestamp")))


def _with_fear_greed(rows: DataFrame, fear_greed: DataFrame | None) -> DataFrame:
    """The fear & greed value of each feature day: the newest one published before the day ended, at most
    MAX_STALENESS_DAYS old (ties: the `latest` endpoint's). Joined per day, not per coin: a few rows."""
    if fear_greed is None:  # no sentiment in the lake yet: the same join, with no values
        fear_greed = rows.sparkSession.createDataFrame([], SENTIMENT_COLUMNS)
    day = F.col(DATE_COLUMN)
    days = rows.select(DATE_COLUMN).distinct()
    values = fear_greed.select(F.struct("snapshot_timestamp", "source", "fear_greed_score", "sentiment_label")
                               .alias("_fg"))
    published = ((F.col("_fg.snapshot_timestamp") < F.date_add(day, 1).cast("timestamp"))
                 & (F.col("_fg.snapshot_timestamp") >= F.date_sub(day, MAX_STALENESS_DAYS).cast("timestamp")))
    picked = days.join(F.broadcast(values), published).groupBy(DATE_COLUMN).agg(F.max("_fg").alias("_fg"))
    return (rows.join(picked, DATE_COLUMN, "left")
            .withColumn("fear_greed_score", F.col("_fg.fear_greed_score"))
            .withColumn("fear_greed_label", F.col("_fg.sentiment_label")))
