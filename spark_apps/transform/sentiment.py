"""Sentiment domain: fact_market_sentiment, from the latest index (10x a day) and its history (init).

A row is one observation of the fear & greed index: `snapshot_timestamp` is the time it describes (the
extraction time for `latest`, the index's own date for `historical`), `extracted_at` when it was fetched, and
`source` which endpoint it came from. Key: (source, snapshot_timestamp).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cryptolake.spark_apps.transform.base import BaseTransformer, StepResult
from cryptolake.spark_apps.transform.quality import Reject, Rules
from cryptolake.spark_apps.transform.tables import TABLES

_RULES = Rules(rejects=(Reject("fear_greed_score outside 0..100", "fear_greed_score < 0 OR fear_greed_score > 100"),),
               prefer=("extracted_at DESC",))


def label_of(score):
    """CoinMarketCap's classification, used only where the API sent no label."""
    return (F.when(score <= 24, "Extreme fear").when(score <= 44, "Fear").when(score <= 55, "Neutral")
            .when(score <= 75, "Greed").otherwise("Extreme greed"))


class SentimentTransformer(BaseTransformer):
    domain = "sentiment"

    def build_fact_market_sentiment(self) -> StepResult:
        def prepare(frames: dict[str, DataFrame]) -> DataFrame:
            parts = []
            if "fear_greed_latest" in frames:
                parts.append(frames["fear_greed_latest"].select(
                    "snapshot_timestamp", F.lit("latest").alias("source"), "fear_greed_score", "sentiment_label",
                    "update_time", F.col("snapshot_timestamp").alias("extracted_at"), "run_id", "source_file"))
            if "fear_greed_historical" in frames:
                parts.append(frames["fear_greed_historical"].select(
                    F.col("index_timestamp").alias("snapshot_timestamp"), F.lit("historical").alias("source"),
                    "fear_greed_score", "sentiment_label", F.col("index_timestamp").alias("update_time"),
                    F.col("snapshot_timestamp").alias("extracted_at"), "run_id", "source_file"))
            rows = parts[0]
            for part in parts[1:]:
                rows = rows.unionByName(part)
            return rows.withColumn("sentiment_label",
                                   F.coalesce(F.col("sentiment_label"), label_of(F.col("fear_greed_score"))))

        return self.run_bronze_step(TABLES["fact_market_sentiment"], prepare, _RULES)
