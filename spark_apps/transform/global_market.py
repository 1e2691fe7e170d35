"""Global market domain: fact_global_market (one row per global-metrics snapshot) with its ratios."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cryptolake.spark_apps.transform.base import BaseTransformer, StepResult
from cryptolake.spark_apps.transform.quality import Clear, Cleaned, Rules, safe_div
from cryptolake.spark_apps.transform.tables import TABLES

_PERCENT = ("btc_dominance", "eth_dominance", "btc_dominance_yesterday", "eth_dominance_yesterday")
_NON_NEGATIVE = ("total_market_cap_usd", "total_volume_24h_usd", "defi_volume_24h", "defi_market_cap",
                 "stablecoin_volume_24h", "stablecoin_market_cap", "derivatives_volume_24h",
                 "altcoin_market_cap_usd", "altcoin_volume_24h_usd", "active_cryptocurrencies",
                 "total_cryptocurrencies", "active_market_pairs", "active_exchanges", "total_exchanges")
_RULES = Rules(
    clears=(*(Clear(c, f"{c} < 0 OR {c} > 100") for c in _PERCENT),
            *(Clear(c, f"{c} < 0") for c in _NON_NEGATIVE)),
    prefer=("last_updated DESC",),
)


class GlobalMarketTransformer(BaseTransformer):
    domain = "global_market"

    def build_fact_global_market(self) -> StepResult:
        table = TABLES["fact_global_market"]
        measures = [c for c in table.column_names
                    if c not in global_kpi_columns() and c not in ("run_id", "source_file")]

        def prepare(frames: dict[str, DataFrame]) -> DataFrame:
            return frames["global_metrics_latest"].select(*measures, "run_id", "source_file")

        def derive(good: DataFrame, cleaned: Cleaned) -> DataFrame:
            return global_kpis(good)

        return self.run_bronze_step(table, prepare, _RULES, derive)


def global_kpi_columns() -> tuple[str, ...]:
    return ("market_liquidity_ratio", "defi_volume_share", "stablecoin_market_share", "btc_dominance_delta",
            "eth_dominance_delta", "crypto_growth_rate_30d")


def global_kpis(rows: DataFrame) -> DataFrame:
    return (rows
            .withColumn("market_liquidity_ratio", safe_div("total_volume_24h_usd", "total_market_cap_usd"))
            .withColumn("defi_volume_share", safe_div("defi_volume_24h", "total_volume_24h_usd"))
            .withColumn("stablecoin_market_share", safe_div("stablecoin_market_cap", "total_market_cap_usd"))
            .withColumn("btc_dominance_delta", F.col("btc_dominance") - F.col("btc_dominance_yesterday"))
            .withColumn("eth_dominance_delta", F.col("eth_dominance") - F.col("eth_dominance_yesterday"))
            .withColumn("crypto_growth_rate_30d",
                        safe_div("past_30d_incremental_crypto_number", "total_cryptocurrencies")))
