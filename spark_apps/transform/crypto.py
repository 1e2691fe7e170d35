"""Crypto domain: dim_crypto_id, dim_crypto_map, dim_crypto_info, fact_crypto_market, fact_crypto_daily."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cryptolake.spark_apps.transform.base import BaseTransformer, StepResult
from cryptolake.spark_apps.transform.daily import build_crypto_daily
from cryptolake.spark_apps.transform.quality import Clear, Cleaned, Reject, Rules, safe_div
from cryptolake.spark_apps.transform.tables import TABLES

_POSITIVE_ID = Reject("crypto_id is not positive", "crypto_id <= 0")
_ID_RULES = Rules(rejects=(_POSITIVE_ID,))
_MAP_RULES = Rules(rejects=(_POSITIVE_ID,), clears=(Clear("rank", "rank <= 0"),))
_INFO_RULES = Rules(rejects=(_POSITIVE_ID,), clears=(
    Clear("self_reported_circulating_supply", "self_reported_circulating_supply < 0"),
    Clear("self_reported_market_cap", "self_reported_market_cap < 0"),
))
# A market row without a positive price is unusable (every KPI and the daily series need it): quarantined.
# Other impossible values are cleared and counted; the row stays.
_MARKET_RULES = Rules(
    rejects=(_POSITIVE_ID, Reject("price_usd is not positive", "price_usd <= 0")),
    clears=(
        Clear("cmc_rank", "cmc_rank <= 0"),
        Clear("num_market_pairs", "num_market_pairs < 0"),
        Clear("volume_24h_usd", "volume_24h_usd < 0"),
        Clear("market_cap_usd", "market_cap_usd < 0"),
        Clear("fully_diluted_market_cap_usd", "fully_diluted_market_cap_usd < 0"),
        Clear("market_cap_dominance_usd", "market_cap_dominance_usd < 0 OR market_cap_dominance_usd > 100"),
        Clear("circulating_supply", "circulating_supply < 0"),
        Clear("total_supply", "total_supply < 0"),
        Clear("max_supply", "max_supply < 0"),
        # a price cannot fall more than 100 %; a million-fold rise in an hour/day/week/month is a feed error
        *(Clear(c, f"{c} < -100 OR {c} > 1e8") for c in (
            "percent_change_1h_usd", "percent_change_24h_usd", "percent_change_7d_usd", "percent_change_30d_usd")),
    ),
    prefer=("quote_last_updated DESC NULLS LAST", "cmc_rank ASC NULLS LAST"),
)


class CryptoTransformer(BaseTransformer):
    domain = "crypto"

    def build_dim_crypto_id(self) -> StepResult:
        def prepare(frames: dict[str, DataFrame]) -> DataFrame:
            return frames["crypto_map"].select(
                "crypto_id", "name", "symbol", "slug", "platform_id", "platform_name", "platform_symbol",
                "platform_slug", "platform_token_address", F.col("snapshot_timestamp").alias("first_seen_timestamp"),
                "snapshot_timestamp", "run_id", "source_file")

        return self.run_bronze_step(TABLES["dim_crypto_id"], prepare, _ID_RULES)

    def build_dim_crypto_map(self) -> StepResult:
        def prepare(frames: dict[str, DataFrame]) -> DataFrame:
            return frames["crypto_map"].select(
                "crypto_id", "snapshot_timestamp", "rank", "name", "symbol", "slug", "is_active",
                "first_historical_data", "last_historical_data", "platform_id", "run_id", "source_file")

        return self.run_bronze_step(TABLES["dim_crypto_map"], prepare, _MAP_RULES)

    def build_dim_crypto_info(self) -> StepResult:
        def prepare(frames: dict[str, DataFrame]) -> DataFrame:
            return frames["crypto_info"].select(
                "crypto_id", "snapshot_timestamp", "name", "symbol", "slug", "category", "description", "notice",
                "tags", "date_added", "date_launched", "logo_url", "website_url", "technical_doc_url",
                "explorer_url", "source_code_url", "twitter_url", "reddit_url", "twitter_username", "platform_id",
                "platform_name", "platform_token_address", "self_reported_circulating_supply",
                "self_reported_market_cap", "run_id", "source_file")

        return self.run_bronze_step(TABLES["dim_crypto_info"], prepare, _INFO_RULES)

    def build_fact_crypto_market(self) -> StepResult:
        def prepare(frames: dict[str, DataFrame]) -> DataFrame:
            return frames["crypto_listings_latest"].select(
                "crypto_id", "snapshot_timestamp", "cmc_rank", "num_market_pairs", "platform_id", "date_added",
                "last_updated", "quote_last_updated", "price_usd", "volume_24h_usd", "volume_change_24h",
                "percent_change_1h_usd", "percent_change_24h_usd", "percent_change_7d_usd", "percent_change_30d_usd",
                "market_cap_usd", "market_cap_dominance_usd", "fully_diluted_market_cap_usd",
                "self_reported_market_cap", "circulating_supply", "total_supply", "max_supply",
                "self_reported_circulating_supply", "infinite_supply", "tvl_usd", "tvl_ratio", "run_id",
                "source_file")

        def derive(good: DataFrame, cleaned: Cleaned) -> DataFrame:
            return market_kpis(good)

        return self.run_bronze_step(TABLES["fact_crypto_market"], prepare, _MARKET_RULES, derive)

    def build_fact_crypto_daily(self) -> StepResult:
        return build_crypto_daily(self)


def market_kpis(rows: DataFrame) -> DataFrame:
    """The inventory's market ratios; NULL when the divisor is NULL or 0."""
    return (rows
            .withColumn("volume_to_market_cap_ratio", safe_div("volume_24h_usd", "market_cap_usd"))
            .withColumn("missing_supply_ratio",
                        safe_div(F.col("total_supply") - F.col("circulating_supply"), F.col("total_supply")))
            .withColumn("supply_utilization", safe_div("circulating_supply", "max_supply"))
            .withColumn("fully_diluted_cap_ratio", safe_div("fully_diluted_market_cap_usd", "market_cap_usd")))
