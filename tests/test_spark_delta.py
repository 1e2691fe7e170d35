"""Spark + Delta on both lake backends, read back by Spark and by an independent reader (delta-rs)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from deltalake import DeltaTable

from cryptolake.lake import SPARK_EVENTS

pytestmark = pytest.mark.spark

SNAP_1 = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
SNAP_2 = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)


def delta_rs_options(lake, stack_env) -> dict[str, str]:
    if lake.is_local:
        return {}
    return {"AWS_ENDPOINT_URL": stack_env["AWS_ENDPOINT_URL"], "AWS_ACCESS_KEY_ID": stack_env["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": stack_env["AWS_SECRET_ACCESS_KEY"], "AWS_REGION": stack_env["AWS_REGION"],
            "AWS_ALLOW_HTTP": "true", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}


def test_delta_history_written_by_spark_is_read_by_spark_and_delta_rs(spark, lake, stack_env):
    table_uri = lake.spark_uri("silver/fact_crypto_market")
    rows = [(1, "BTC", 91000.5, SNAP_1), (1027, "ETH", 3100.25, SNAP_1)]
    spark.createDataFrame(rows, "crypto_id long, symbol string, price_usd double, snapshot_timestamp timestamp") \
        .write.format("delta").partitionBy("crypto_id").mode("append").save(table_uri)
    spark.createDataFrame([(1, "BTC", 92000.0, SNAP_2)],
                          "crypto_id long, symbol string, price_usd double, snapshot_timestamp timestamp") \
        .write.format("delta").mode("append").save(table_uri)

    back = spark.read.format("delta").load(table_uri)
    assert back.count() == 3
    assert spark.read.format("delta").option("versionAsOf", 0).load(table_uri).count() == 2

    independent = DeltaTable(lake.uri_of("silver/fact_crypto_market"),
                             storage_options=delta_rs_options(lake, stack_env))
    assert independent.version() == 1
    data = independent.to_pyarrow_table().sort_by("snapshot_timestamp").to_pylist()
    assert [(r["crypto_id"], r["price_usd"]) for r in data] == [(1, 91000.5), (1027, 3100.25), (1, 92000.0)]
    assert data[-1]["snapshot_timestamp"].astimezone(timezone.utc) == SNAP_2
    assert independent.metadata().partition_columns == ["crypto_id"]
    assert lake.list_files("silver/fact_crypto_market/_delta_log", ".json")


def test_event_logs_land_in_the_lake(spark, stack_env):
    event_dir = spark.conf.get("spark.eventLog.dir")
    assert event_dir.startswith("s3a://cryptolake/tests/spark-") and event_dir.endswith(SPARK_EVENTS)
    spark.range(100).selectExpr("sum(id)").collect()
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(event_dir)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    names = [status.getPath().getName() for status in fs.listStatus(path)]
    assert any(name.startswith("eventlog_v2_") or name.startswith("local-") for name in names), names
