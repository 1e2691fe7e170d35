"""`cryptolake demo`: the embedded default end to end, on the local stack.

It grows as features land; today it brings the stack up and proves the lake path that every later step uses:
a Spark job writes a Delta table to the S3 lake and records its run in the ledger, and the table is read back.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from cryptolake import logs
from cryptolake.lake import Lake
from cryptolake.ledger import Ledger
from cryptolake.local.stack import LocalStack
from cryptolake.settings import Settings

log = logs.get(__name__)


def run_demo(state_dir: Path) -> dict[str, str]:
    stack = LocalStack(state_dir)
    stack.up()
    settings = Settings.load(env={**os.environ, **stack.env()})
    lake = Lake.from_settings(settings)

    from cryptolake.spark_apps.session import build_spark_session

    spark = build_spark_session("cryptolake-demo", settings)
    table = "silver/_demo_lake_check"
    with Ledger(lake).run("transform", "demo", started=datetime.now(timezone.utc)) as run:
        frame = spark.range(1000).selectExpr("id", "current_timestamp() AS snapshot_timestamp")
        frame.write.format("delta").mode("append").save(lake.spark_uri(table))
        run.rows = spark.read.format("delta").load(lake.spark_uri(table)).count()
        run.files = [table]
    spark.stop()
    return {"lake": settings.lake_uri, "delta table": lake.uri_of(table), "rows in table": str(run.rows),
            "ledger record": f"{lake.uri}/_meta/transform/demo/{run.run_id}.json",
            "spark event logs": lake.spark_uri("spark-events"), **stack.status()}
