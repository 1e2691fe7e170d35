"""Category domain: dim_crypto_category, link_crypto_category, fact_crypto_category."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cryptolake.spark_apps.transform.base import BaseTransformer, StepResult
from cryptolake.spark_apps.transform.quality import Clear, Cleaned, Reject, Rules, safe_div
from cryptolake.spark_apps.transform.tables import TABLES

_CATEGORY_ID = Reject("category_id is empty", "trim(category_id) = ''")
_DIM_RULES = Rules(rejects=(_CATEGORY_ID,))
_LINK_RULES = Rules(rejects=(_CATEGORY_ID, Reject("crypto_id is not positive", "crypto_id <= 0")),
                    clears=(Clear("cmc_rank", "cmc_rank <= 0"),))
_FACT_RULES = Rules(rejects=(_CATEGORY_ID,), clears=(
    Clear("num_tokens", "num_tokens < 0"),
    Clear("market_cap", "market_cap < 0"),
    Clear("volume", "volume < 0"),
))


class CategoryTransformer(BaseTransformer):
    domain = "category"

    def build_dim_crypto_category(self) -> StepResult:
        def prepare(frames: dict[str, DataFrame]) -> DataFrame:
            return frames["crypto_categories"].select(
                "category_id", "name", "title", "description",
                F.col("snapshot_timestamp").alias("first_seen_timestamp"), "snapshot_timestamp", "run_id",
                "source_file")

        return self.run_bronze_step(TABLES["dim_crypto_category"], prepare, _DIM_RULES)

    def build_link_crypto_category(self) -> StepResult:
        def prepare(frames: dict[str, DataFrame]) -> DataFrame:
            return frames["crypto_category"].select(
                "category_id", "crypto_id", "snapshot_timestamp", "name", "symbol", "slug", "cmc_rank",
                "last_updated", "run_id", "source_file")

        return self.run_bronze_step(TABLES["link_crypto_category"], prepare, _LINK_RULES)

    def build_fact_crypto_category(self) -> StepResult:
        def prepare(frames: dict[str, DataFrame]) -> DataFrame:
            return frames["crypto_categories"].select(
                "category_id", "snapshot_timestamp", "num_tokens", "avg_price_change", "market_cap",
                "market_cap_change", "volume", "volume_change", "last_updated", "run_id", "source_file")

        def derive(good: DataFrame, cleaned: Cleaned) -> DataFrame:
            return category_kpis(good)

        return self.run_bronze_step(TABLES["fact_crypto_category"], prepare, _FACT_RULES, derive)


def category_kpis(rows: DataFrame) -> DataFrame:
    """The inventory's category ratios; NULL when the divisor (or a factor) is NULL, or the divisor is 0."""
    return (rows
            .withColumn("volume_to_market_cap_ratio", safe_div("volume", "market_cap"))
            .withColumn("dominance_per_token", safe_div("market_cap", "num_tokens"))
            .withColumn("market_cap_change_rate", safe_div("market_cap_change", "market_cap"))
            .withColumn("volume_change_rate", safe_div("volume_change", "volume"))
            .withColumn("price_change_index", F.col("avg_price_change") * F.col("num_tokens")))
