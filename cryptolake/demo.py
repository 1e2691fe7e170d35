"""`cryptolake demo`: the embedded default end to end, on the local stack (PostgreSQL, S3 server, sandbox API).

It grows as features land: today it extracts the `init` group from the sandbox into bronze on the S3 lake,
then proves the Spark path every later step uses (a Delta table written to the lake, recorded in the ledger).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from cryptolake import logs
from cryptolake.lake import SPARK_EVENTS, Lake
from cryptolake.ledger import Ledger
from cryptolake.local.stack import LocalStack
from cryptolake.settings import Settings

log = logs.get(__name__)


def run_demo(state_dir: Path) -> tuple[dict[str, str], int]:
    """(summary lines, exit status)"""
    from cryptolake.services.extract.registry import group
    from cryptolake.services.extract.runner import run_many

    stack = LocalStack(state_dir)
    stack.up()
    settings = Settings.load(env={**os.environ, **stack.env()})
    lake = Lake.from_settings(settings)
    ledger = Ledger(lake)

    extractors = group("init")
    status = run_many(extractors, settings)
    summary = {"lake": settings.lake_uri}
    for extractor in extractors:
        record = ledger.latest("extract", extractor.name, ("success", "partial", "skipped", "failed"))
        summary[f"bronze {extractor.name}"] = (f"{record.status}: {record.rows} rows, {len(record.files)} files, "
                                               f"{record.credits} credits" if record else "not run")
    summary["spark check"] = _spark_check(settings, lake, ledger)
    summary["spark event logs"] = lake.spark_uri(SPARK_EVENTS)
    return {**summary, **stack.status()}, status


def _spark_check(settings: Settings, lake: Lake, ledger: Ledger) -> str:
    from cryptolake.spark_apps.session import build_spark_session

    spark = build_spark_session("cryptolake-demo", settings)
    table = "silver/_demo_lake_check"
    try:
        with ledger.run("transform", "demo", started=datetime.now(timezone.utc)) as run:
            frame = spark.range(1000).selectExpr("id", "current_timestamp() AS snapshot_timestamp")
            frame.write.format("delta").mode("append").save(lake.spark_uri(table))
            run.rows = spark.read.format("delta").load(lake.spark_uri(table)).count()
            run.files = [table]
    finally:
        spark.stop()
    return f"Delta table {lake.uri_of(table)} has {run.rows} rows"
