"""Exchange domain: dim_exchange_id, dim_exchange_map, dim_exchange_info, fact_exchange_assets."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cryptolake.spark_apps.transform.base import BaseTransformer, StepResult
from cryptolake.spark_apps.transform.quality import Clear, Cleaned, Reject, Rules, safe_div
from cryptolake.spark_apps.transform.tables import TABLES

# The spot volume used by wallet_weight comes from the newest exchange_info snapshot at most this old:
# info is refreshed weekly for new exchanges and fully every CMC_RESCAN_DAYS (30), so 45 days covers a missed run.
SPOT_VOLUME_MAX_AGE_DAYS = 45

_ID_RULES = Rules(rejects=(Reject("exchange_id is not positive", "exchange_id <= 0"),))
_INFO_RULES = Rules(
    rejects=(Reject("exchange_id is not positive", "exchange_id <= 0"),),
    clears=(Clear("maker_fee", "abs(maker_fee) > 100"), Clear("taker_fee", "abs(taker_fee) > 100"),
            Clear("weekly_visits", "weekly_visits < 0"), Clear("spot_volume_usd", "spot_volume_usd < 0")),
)
_ASSET_RULES = Rules(
    rejects=(Reject("exchange_id is not positive", "exchange_id <= 0"),
             Reject("crypto_id is not positive", "crypto_id <= 0")),
    clears=(Clear("balance", "balance < 0"), Clear("currency_price_usd", "currency_price_usd < 0")),
    prefer=("balance DESC NULLS LAST",),
)


class ExchangeTransformer(BaseTransformer):
    domain = "exchange"

    def build_dim_exchange_id(self) -> StepResult:
        def prepare(frames: dict[str, DataFrame]) -> DataFrame:
            return frames["exchange_map"].select(
                "exchange_id", "name", "slug", F.col("snapshot_timestamp").alias("first_seen_timestamp"),
                "snapshot_timestamp", "run_id", "source_file")

        return self.run_bronze_step(TABLES["dim_exchange_id"], prepare, _ID_RULES)

    def build_dim_exchange_map(self) -> StepResult:
        def prepare(frames: dict[str, DataFrame]) -> DataFrame:
            return frames["exchange_map"].select(
                "exchange_id", "snapshot_timestamp", "name", "slug", "is_active", "first_historical_data",
                "last_historical_data", "run_id", "source_file")

        return self.run_bronze_step(TABLES["dim_exchange_map"], prepare, _ID_RULES)

    def build_dim_exchange_info(self) -> StepResult:
        def prepare(frames: dict[str, DataFrame]) -> DataFrame:
            return frames["exchange_info"].select(
                "exchange_id", "snapshot_timestamp", "name", "slug", "description", "date_launched", "notice", "type",
                "logo_url", "website_url", "twitter_url", "blog_url", "chat_url", "fee_url", "countries", "fiats",
                "maker_fee", "taker_fee", "weekly_visits", "spot_volume_usd", "spot_volume_last_updated", "run_id",
                "source_file")

        return self.run_bronze_step(TABLES["dim_exchange_info"], prepare, _INFO_RULES)

    def build_fact_exchange_assets(self) -> StepResult:
        def prepare(frames: dict[str, DataFrame]) -> DataFrame:
            return frames["exchange_assets"].select(
                "exchange_id", "wallet_address", "crypto_id", "snapshot_timestamp",
                F.col("platform_crypto_id").alias("blockchain_crypto_id"),
                F.col("platform_symbol").alias("blockchain_symbol"), F.col("platform_name").alias("blockchain_name"),
                "currency_symbol", "currency_name", "balance", "currency_price_usd", "run_id", "source_file")

        def derive(good: DataFrame, cleaned: Cleaned) -> DataFrame:
            rows = good.withColumn("total_usd_value", F.col("balance") * F.col("currency_price_usd"))
            rows = self._with_spot_volume(rows, cleaned)
            return rows.withColumn("wallet_weight", safe_div("total_usd_value", "spot_volume_usd"))

        return self.run_bronze_step(TABLES["fact_exchange_assets"], prepare, _ASSET_RULES, derive)

    def _with_spot_volume(self, rows: DataFrame, cleaned: Cleaned) -> DataFrame:
        """As-of join: each (exchange, snapshot) gets the spot volume of the newest info snapshot not after it.

        Info is weekly and assets daily: joining "the latest info" would leave NULL gaps or leak the future;
        the as-of rule gives every asset snapshot the value known at its time (NULL when none is recent enough).
        Only the info partitions within SPOT_VOLUME_MAX_AGE_DAYS before the batch are read.
        """
        if not self.exists("dim_exchange_info") or not cleaned.snapshot_dates:
            return rows.withColumn("spot_volume_usd", F.lit(None).cast("double")) \
                       .withColumn("spot_volume_snapshot_timestamp", F.lit(None).cast("timestamp"))
        low, high = cleaned.ts_range
        first_day = min(cleaned.snapshot_dates)
        info = (self.read_silver("dim_exchange_info")
                .where(F.col("snapshot_date") >= F.date_sub(F.lit(first_day), SPOT_VOLUME_MAX_AGE_DAYS))
                .where(F.col("snapshot_timestamp") <= F.timestamp_micros(F.lit(high)))
                .where(F.col("spot_volume_usd").isNotNull())
                .select("exchange_id", F.col("snapshot_timestamp").alias("info_ts"), "spot_volume_usd"))
        snaps = rows.select("exchange_id", "snapshot_timestamp").distinct()
        asof = (snaps.join(info, (snaps.exchange_id == info.exchange_id) & (info.info_ts <= snaps.snapshot_timestamp)
                           & (info.info_ts >= F.timestamp_add("DAY", F.lit(-SPOT_VOLUME_MAX_AGE_DAYS),
                                                               snaps.snapshot_timestamp)))
                .groupBy(snaps.exchange_id, snaps.snapshot_timestamp)
                .agg(F.max_by("spot_volume_usd", "info_ts").alias("spot_volume_usd"),
                     F.max("info_ts").alias("spot_volume_snapshot_timestamp")))
        return rows.join(asof, ["exchange_id", "snapshot_timestamp"], "left")
