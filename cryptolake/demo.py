"""`cryptolake demo`: the embedded default end to end, on the local stack (PostgreSQL, S3 server, sandbox API).

It grows as features land: today it extracts the `init` group from the sandbox into bronze on the S3 lake,
transforms it into the silver Delta tables with local Spark, migrates the warehouse, loads it, and ends with
the row counts of the warehouse tables.
"""

from __future__ import annotations

import os
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
    transform_status = _transform(settings, ledger, summary)
    status = transform_status or status  # a failed transform outranks a partial extraction
    status = _warehouse(settings, summary) or status
    summary["spark event logs"] = lake.spark_uri(SPARK_EVENTS)
    return {**summary, **stack.status()}, status


def _transform(settings: Settings, ledger: Ledger, summary: dict[str, str]) -> int:
    from cryptolake.spark_apps.transform.main import run
    from cryptolake.spark_apps.transform.tables import TABLES

    status = run(settings, "init")
    for name in TABLES:
        record = ledger.latest("transform", name, ("success", "partial", "skipped", "failed"))
        summary[f"silver {name}"] = f"{record.status}: {record.rows} rows written" if record else "not run"
    return status


def _warehouse(settings: Settings, summary: dict[str, str]) -> int:
    """Migrate, load the init group, and count each warehouse table's rows."""
    from sqlalchemy import func, select

    from cryptolake.spark_apps.load.main import run
    from cryptolake.warehouse.migrate import engine_for, migrate
    from cryptolake.warehouse.models import load_order

    summary["warehouse"] = migrate(settings)[0]
    status = run(settings, "init")
    engine = engine_for(settings.warehouse_url)
    try:
        with engine.connect() as conn:
            for table in load_order():
                rows = conn.execute(select(func.count()).select_from(table)).scalar()
                summary[f"warehouse {table.name}"] = f"{rows} rows"
    finally:
        engine.dispose()
    return status
